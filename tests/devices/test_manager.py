"""The devices at the manager level, on a real Redis, in both layouts (Node's, and the cluster
layout on one server): what a sign-in records and where, the listing, killdevice's ownership
rules, and killsoid(keep=) as one atomic script. The Node-made sessions here are made by
``create()``, which writes Node's hash byte for byte (tests/manager/test_node_interop.py proves
it; the real Node module is in test_node.py beside this file)."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
import redis

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.devices import Device, from_records
from redis_sessions.keys import ClusterKeys, Keys

from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE

APP = "devapp"
NODE_FIELDS = {"id", "r", "w", "ip", "la", "ttl"}


@pytest.fixture(params=["node", "cluster"])
def layout(request) -> str:
    return request.param


@pytest.fixture
def drs(layout: str, redis_url: str, namespace: str):
    """A RedisSessions of the layout on the test server (the cluster layout through a client)."""
    client = redis.Redis.from_url(redis_url)
    manager = RedisSessions(client, namespace=namespace, wipe=0, layout=layout)
    yield manager
    manager.close()
    client.close()


def session_key(rs: RedisSessions, token: str) -> str:
    keys = rs.keys
    if isinstance(keys, ClusterKeys):
        from redis_sessions.keys import token_bucket

        return keys.session_prefix(APP, token_bucket(token)) + token
    assert isinstance(keys, Keys)
    return keys.session_prefix(APP) + token


def sign_in(rs: RedisSessions, user: str, agent: str | None, ip: str = "203.0.113.7") -> str:
    return rs.upgrade(APP, None, user, ip, user_agent=agent)["token"]


def test_a_sign_in_records_its_device_beside_nodes_fields(drs, redis_client) -> None:
    token = sign_in(drs, "u1", FIREFOX_LINUX.user_agent)
    stored = {k.decode(): v.decode() for k, v in redis_client.hgetall(session_key(drs, token)).items()}
    # (and "p", ours with redis_ttl: the user's token set was persisted; scripts/_lib.lua)
    assert set(stored) - {"p"} == NODE_FIELDS | {"dv", "si", "ua"}
    assert stored["ua"] == FIREFOX_LINUX.user_agent
    assert abs(int(stored["si"]) - int(stored["la"])) <= 1
    assert len(stored["dv"]) == 24 and stored["dv"] not in token
    # what Node's get reads is unchanged: the extra fields are not part of a session reply
    assert set(drs.get(APP, token)) == {"id", "r", "w", "ttl", "idle", "ip"}


def test_create_stays_nodes_layout_and_lists_as_an_unknown_device(drs, redis_client) -> None:
    token = drs.create(APP, "u1", "198.51.100.2")
    stored = redis_client.hgetall(session_key(drs, token))
    # no device of ours in a create() (only the mark "p" of a persisted token set)
    assert {k.decode() for k in stored} - {"p"} == NODE_FIELDS
    [record] = drs.devices(APP, "u1")
    device = Device.from_record(record)
    assert device.label == "Unknown device" and device.kind == "other"
    assert device.user_agent is None and device.browser is None and device.os is None
    assert device.ip == "198.51.100.2" and not device.current
    # signed in when its token was made (Node's tokens carry the time), to the second
    created = int(token[56:], 36) // 1000
    assert device.signed_in is not None and int(device.signed_in.timestamp()) == created
    # its handle is a digest of the token: stable, not the token, and it ends the session
    assert record["handle"] == hashlib.sha1(f"rs-device:{token}".encode()).hexdigest()[:24]
    assert drs.devices(APP, "u1")[0]["handle"] == record["handle"]
    assert drs.killdevice(APP, "u1", record["handle"]) == 1
    assert drs.get(APP, token) is None


def test_devices_lists_live_sessions_without_any_token(drs) -> None:
    tokens = [sign_in(drs, "u1", a.user_agent) for a in (FIREFOX_LINUX, SAFARI_IPHONE)]
    tokens.append(drs.create(APP, "u1", "10.0.0.3"))
    sign_in(drs, "other", CHROME_ANDROID.user_agent)
    records = drs.devices(APP, "u1", tokens[1])
    assert len(records) == 3
    assert [r["current"] for r in records].count(True) == 1
    assert next(r for r in records if r["current"])["user_agent"] == SAFARI_IPHONE.user_agent
    text = repr(records)
    assert not any(token in text or token[:16] in text for token in tokens)
    devices = from_records(records)
    assert devices[0].current and devices[0].label == SAFARI_IPHONE.label
    assert {d.kind for d in devices} == {"mobile", "desktop", "other"}
    assert drs.devices(APP, "u1", tokens[0], only_current=True)[0]["current"] is True
    assert drs.devices(APP, "other", tokens[0], only_current=True) == []  # not that user's


def test_the_handle_is_stable_for_the_sessions_life(drs) -> None:
    token = sign_in(drs, "u1", FIREFOX_LINUX.user_agent)
    [before] = drs.devices(APP, "u1")
    drs.set(APP, token, {"a": 1})
    again = drs.regenerate(APP, token, "203.0.113.9")  # a new token for the same session
    assert again is not None
    [after] = drs.devices(APP, "u1", again["token"])
    assert after["handle"] == before["handle"] and after["current"]
    assert after["signed_in"] == before["signed_in"]
    assert after["user_agent"] == FIREFOX_LINUX.user_agent
    # a Node-made session regenerated keeps the handle its token gave it
    node_token = drs.create(APP, "u2", "10.0.0.2")
    [node_before] = drs.devices(APP, "u2")
    renewed = drs.regenerate(APP, node_token, "10.0.0.2")
    assert renewed is not None
    assert drs.devices(APP, "u2")[0]["handle"] == node_before["handle"]
    # a new sign-in of the same user (over its session) is a new device
    relogged = drs.upgrade(APP, again["token"], "u1", "203.0.113.9", user_agent="curl/8.5.0")
    [fresh] = drs.devices(APP, "u1", relogged["token"])
    assert fresh["handle"] != before["handle"] and fresh["user_agent"] == "curl/8.5.0"


def test_a_handle_of_another_users_session_never_ends_it(drs) -> None:
    mine = sign_in(drs, "alice", FIREFOX_LINUX.user_agent)
    theirs = sign_in(drs, "bob", SAFARI_IPHONE.user_agent)
    node_theirs = drs.create(APP, "bob", "10.0.0.5")
    for handle in (r["handle"] for r in drs.devices(APP, "bob")):
        assert drs.killdevice(APP, "alice", handle, by=mine) == 0
        assert drs.killdevice(APP, "alice", handle) == 0
    assert drs.get(APP, theirs) is not None and drs.get(APP, node_theirs) is not None
    assert len(drs.devices(APP, "bob")) == 2


def test_ending_a_device_needs_a_live_requester_of_that_user(drs) -> None:
    laptop = sign_in(drs, "alice", FIREFOX_LINUX.user_agent)
    phone = sign_in(drs, "alice", SAFARI_IPHONE.user_agent)
    stranger = sign_in(drs, "mallory", CHROME_ANDROID.user_agent)
    phone_handle = next(r["handle"] for r in drs.devices(APP, "alice", phone) if r["current"])
    # another user's live session, or a session that ended, cannot end alice's devices
    assert drs.killdevice(APP, "alice", phone_handle, by=stranger) == 0
    drs.kill(APP, laptop)
    assert drs.killdevice(APP, "alice", phone_handle, by=laptop) == 0
    assert drs.get(APP, phone) is not None
    # the requester's own device: 2 (it was the requester itself)
    assert drs.killdevice(APP, "alice", phone_handle, by=phone) == 2
    assert drs.get(APP, phone) is None
    assert drs.killdevice(APP, "alice", phone_handle) == 0  # gone


def test_malformed_handles_are_refused_before_redis(drs) -> None:
    from redis_sessions.errors import ValidationError

    for bad in ("", "x" * 24, "A" * 24, "0" * 23, "0" * 25, None, 12):
        with pytest.raises(ValidationError):
            drs.killdevice(APP, "u1", bad)


def test_killsoid_keep_ends_every_other_session_in_one_script(drs, command_counter) -> None:
    keep = sign_in(drs, "u1", FIREFOX_LINUX.user_agent)
    others = [drs.create(APP, "u1", "10.0.0.1") for _ in range(120)]  # beyond a kill chunk
    bystander = sign_in(drs, "u2", SAFARI_IPHONE.user_agent)
    counter = command_counter()
    assert drs.killsoid(APP, "u1", keep=keep) == 120
    assert counter.count == 1  # ONE FCALL: "log out other devices" is one atomic script
    assert [r["current"] for r in drs.devices(APP, "u1", keep)] == [True]
    assert all(drs.get(APP, t) is None for t in others[:5])
    assert drs.get(APP, bystander) is not None


def test_killsoid_keep_of_an_ended_session_ends_nothing(drs) -> None:
    gone = sign_in(drs, "u1", FIREFOX_LINUX.user_agent)
    other = sign_in(drs, "u1", SAFARI_IPHONE.user_agent)
    drs.kill(APP, gone)
    assert drs.killsoid(APP, "u1", keep=gone) == 0
    assert drs.get(APP, other) is not None
    assert drs.killsoid(APP, "u2", keep=other) == 0  # a session of another user


def test_sign_ins_racing_log_out_others_are_ended_or_listed(drs) -> None:
    """Devices signing in while "log out other devices" runs: each is either ended or listed
    afterwards, and the user's index holds exactly the live sessions (never half-done)."""
    keep = sign_in(drs, "u1", FIREFOX_LINUX.user_agent)
    for _ in range(30):
        drs.create(APP, "u1", "10.0.0.1")
    made: list[str] = []
    stop = threading.Event()

    def signer() -> None:
        while not stop.is_set() and len(made) < 200:
            made.append(sign_in(drs, "u1", CHROME_ANDROID.user_agent, "10.0.0.9"))

    thread = threading.Thread(target=signer)
    thread.start()
    try:
        for _ in range(5):
            drs.killsoid(APP, "u1", keep=keep)
    finally:
        stop.set()
        thread.join(10)
    listed = {r["handle"] for r in drs.devices(APP, "u1")}
    live = [t for t in made if drs.get(APP, t) is not None]
    assert len(listed) == len(live) + 1  # the live ones, and the one kept
    tokens = {s["token"] for s in drs.soid(APP, "u1")}
    assert tokens == {*live, keep}


def test_a_user_agent_is_cut_and_cleaned(drs) -> None:
    token = sign_in(drs, "u1", "Agent/1.0 \x00\x07" + "x" * 700)
    [record] = drs.devices(APP, "u1", token)
    assert len(record["user_agent"]) == 512
    assert record["user_agent"].startswith("Agent/1.0 ??x")
    assert sign_in(drs, "u2", "") and drs.devices(APP, "u2")[0]["user_agent"] is None


def test_the_async_manager_does_the_same(layout, redis_url, namespace) -> None:
    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        ars = AsyncRedisSessions(client, namespace=namespace, wipe=0, layout=layout)
        try:
            keep = (await ars.upgrade(APP, None, "u1", "1.2.3.4",
                                      user_agent=FIREFOX_LINUX.user_agent))["token"]
            other = (await ars.upgrade(APP, None, "u1", "1.2.3.5",
                                       user_agent=SAFARI_IPHONE.user_agent))["token"]
            records = await ars.devices(APP, "u1", keep)
            assert {r["user_agent"] for r in records} == {FIREFOX_LINUX.user_agent,
                                                          SAFARI_IPHONE.user_agent}
            mine = [r for r in await ars.devices(APP, "u1", keep, only_current=True)]
            assert len(mine) == 1 and mine[0]["current"]
            theirs = next(r["handle"] for r in records if not r["current"])
            assert await ars.killdevice(APP, "u2", theirs) == 0
            assert await ars.killdevice(APP, "u1", theirs, by=keep) == 1
            assert await ars.get(APP, other) is None
            third = await ars.create(APP, "u1", "1.2.3.6")
            assert await ars.killsoid(APP, "u1", keep=keep) == 1
            assert await ars.get(APP, third) is None and await ars.get(APP, keep) is not None
        finally:
            await ars.close()
            await client.aclose()

    asyncio.run(run())
