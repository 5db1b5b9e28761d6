"""Redis at maxmemory (issue 18, items 1 and 2), on a server of the test's own.

Under an eviction policy Redis may drop keys to make room; whatever it drops, every live session
of a user id is found by soid() and ended by killsoid(). Under ``noeviction`` at maxmemory the
writes are refused, but a logout is not: the kill functions run out of memory (``allow-oom``).
"""

from __future__ import annotations

import logging

import pytest
import redis

from redis_sessions import BackendError, RedisSessions
from redis_sessions.eviction import OK, PROBLEM, WARNING, eviction_risks

from ..redis_server import RedisServer

APP = "testapp"
USERS = 2000
BLOB = "x" * 2000  # each session ~2.2 KB: USERS sessions are well over the limit below
HEADROOM = 2 << 20  # bytes over the server's memory at the start (the indexes fit in it)


@pytest.fixture
def server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(server: RedisServer):
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    yield client
    client.close()


def _limit(client: redis.Redis, policy: str, headroom: int = HEADROOM) -> None:
    client.config_set("maxmemory-policy", policy)
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + headroom)


def _fill(rs: RedisSessions, client: redis.Redis) -> dict[str, str]:
    """A session for each of USERS users, until Redis evicted keys to make room."""
    tokens = {f"user{i}": rs.create(APP, f"user{i}", "10.0.0.1", d={"blob": BLOB})
              for i in range(USERS)}
    assert int(client.info("stats")["evicted_keys"]) > 0, "the test never reached maxmemory"
    return tokens


# (volatile-* with redis_ttl=False leaves Redis nothing of ours to evict but anonymous sessions:
# at maxmemory it refuses writes as noeviction does)
@pytest.mark.parametrize("policy, redis_ttl", [
    ("volatile-lru", True), ("allkeys-lru", True), ("allkeys-lru", False)])
def test_every_live_session_is_found_and_killed_under_eviction(server, client, policy,
                                                               redis_ttl) -> None:
    # activity_resolution=0: every get runs the function, which checks the user's set (a hot
    # load, within the resolution, does not: test_a_hot_load_misses_a_lost_set_for_one_resolution)
    with RedisSessions(server.url, wipe=0, redis_ttl=redis_ttl, activity_resolution=0) as rs:
        rs.kill(APP, rs.create(APP, "warm", "10.0.0.1"))  # the function library is loaded
        _limit(client, policy)
        tokens = _fill(rs, client)
        listed = {user: {s["token"] for s in rs.soid(APP, user)} for user in tokens}
        # a session get() still serves is one soid() listed
        hidden = [u for u, t in tokens.items() if rs.get(APP, t) and t not in listed[u]]
        assert hidden == []
        for user in tokens:
            rs.killsoid(APP, user)
        survivors = [u for u, t in tokens.items() if rs.get(APP, t) is not None]
        assert survivors == []


def test_user_token_sets_carry_no_redis_ttl(server, client) -> None:
    """Under volatile-* Redis evicts only keys with a TTL: the index of a user's sessions must
    never be one of them (its loss would hide the user's sessions from killsoid)."""
    with RedisSessions(server.url, wipe=0) as rs:
        token = rs.create(APP, "alice", "10.0.0.1")
        assert client.ttl(f"rs:{APP}:{token}") > 0  # the session itself expires by Redis
        assert client.ttl(f"rs:{APP}:us:alice") == -1
        # as a set and a session left by an earlier release (its sessions lack the mark `p`)
        client.expire(f"rs:{APP}:us:alice", 3600)
        client.hdel(f"rs:{APP}:{token}", "p")
        rs.get(APP, token)
        # beyond the activity resolution (10 s), so the next get records activity
        client.hincrby(f"rs:{APP}:{token}", "la", -15)
        rs.get(APP, token)
        assert client.ttl(f"rs:{APP}:us:alice") == -1  # the next recorded activity removed it
        assert client.hget(f"rs:{APP}:{token}", "p") == b"1"
        # a new session of the user persists its set at once
        client.expire(f"rs:{APP}:us:alice", 3600)
        rs.create(APP, "alice", "10.0.0.1")
        assert client.ttl(f"rs:{APP}:us:alice") == -1


def test_a_session_missing_from_its_users_index_is_ended(server, client) -> None:
    """allkeys-* may evict the user's token set alone: the sessions it listed end on their next
    use, so none is left that killsoid cannot find (at once with activity_resolution=0; within
    one resolution otherwise: tests/manager/test_hot_load.py)."""
    with RedisSessions(server.url, wipe=0, activity_resolution=0) as rs:
        token = rs.create(APP, "alice", "10.0.0.1", d={"a": 1})
        client.delete(f"rs:{APP}:us:alice")  # what an eviction does
        assert rs.soapp(APP, 600) == []
        assert rs.get(APP, token) is None
        assert rs.set(APP, token, {"b": 2}) is None
        assert client.exists(f"rs:{APP}:{token}") == 0


# -- noeviction at maxmemory: writes refused, logouts done ----------------------------------------


def test_kills_run_when_redis_is_out_of_memory(server, client) -> None:
    with RedisSessions(server.url, wipe=0) as rs:
        one, two = rs.create(APP, "alice", "10.0.0.1"), rs.create(APP, "alice", "10.0.0.2")
        three = rs.create(APP, "bob", "10.0.0.3")
        phone, laptop, tablet = (rs.upgrade(APP, None, "erin", "10.0.0.6")["token"]
                                 for _ in range(3))
        handle = next(d["handle"] for d in rs.devices(APP, "erin", tablet) if d["current"])
        rs.create(APP, "carol", "10.0.0.4")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # every write-flagged command is refused now
        with pytest.raises(BackendError, match="OOM"):
            rs.get(APP, one)
        with pytest.raises(BackendError, match="OOM"):
            rs.create(APP, "dave", "10.0.0.5")
        assert rs.kill(APP, three) == 1
        assert rs.killsoid(APP, "alice") == 2
        assert rs.killdevice(APP, "erin", handle, by=phone) == 1  # "log out that device"
        assert rs.killsoid(APP, "erin", keep=phone) == 1  # "log out the other devices"
        assert rs.killall(APP) == 2
        client.config_set("maxmemory", 0)
        assert [rs.get(APP, t) for t in (one, two, three, phone, laptop, tablet)] == [None] * 6


# -- the policy check ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy, redis_ttl, expected", [
    ("noeviction", True, [(OK, "nothing is evicted")]),
    ("volatile-lru", False, [(WARNING, "anonymous")]),
    ("volatile-lru", True, [(WARNING, "session hashes"), (WARNING, "anonymous")]),
    ("volatile-lfu", True, [(WARNING, "session hashes"), (WARNING, "anonymous")]),
    ("volatile-random", True, [(WARNING, "session hashes"), (WARNING, "anonymous")]),
    ("volatile-ttl", True, [(WARNING, "session hashes"), (WARNING, "anonymous")]),
    ("allkeys-lru", False, [(PROBLEM, "killall"), (WARNING, "any session")]),
    ("allkeys-lfu", True, [(PROBLEM, "killall"), (WARNING, "any session")]),
    ("allkeys-random", True, [(PROBLEM, "killall"), (WARNING, "any session")]),
])
def test_eviction_risks(policy, redis_ttl, expected) -> None:
    """The one assessment (the managers log it, ``redis-sessions check`` reports it): nothing
    evicted is fine, volatile-* a warning (sessions may end early: supported), allkeys-* a
    problem (killall/soapp/activity/wiper may miss sessions), the worst first."""
    info = {"maxmemory": 100 << 20, "maxmemory_policy": policy}
    risks = eviction_risks(info, redis_ttl)
    assert [risk.level for risk in risks] == [level for level, _ in expected]
    for risk, (_, words) in zip(risks, expected):
        assert words in risk.message and policy in risk.message
    # no maxmemory: nothing is evicted, whatever the policy
    assert eviction_risks({"maxmemory": 0, "maxmemory_policy": policy}, redis_ttl) == [
        (OK, "no maxmemory limit: nothing is evicted")]
    # INFO's text, as a wire returns it
    text = f"# Memory\r\nmaxmemory:{100 << 20}\r\nmaxmemory_policy:{policy}\r\n".encode()
    assert eviction_risks(text, redis_ttl) == risks


def test_the_policy_is_checked_once_at_the_first_call(server, client, caplog) -> None:
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", 1 << 30)
    with RedisSessions(server.url, wipe=0) as rs, caplog.at_level(logging.WARNING,
                                                                  "redis_sessions"):
        token = rs.create(APP, "alice", "10.0.0.1")
        rs.get(APP, token)
    warnings = [r for r in caplog.records if "allkeys-lru" in r.getMessage()]
    assert len(warnings) == 2  # the app-wide indexes and the sessions, said once
    assert all(r.levelno == logging.WARNING for r in warnings)


def test_nothing_is_logged_when_nothing_can_be_evicted(server, client, caplog) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1 << 30)
    with RedisSessions(server.url, wipe=0) as rs, caplog.at_level(logging.DEBUG,
                                                                  "redis_sessions"):
        rs.create(APP, "alice", "10.0.0.1")
    assert not [r for r in caplog.records if "maxmemory" in r.getMessage()]
