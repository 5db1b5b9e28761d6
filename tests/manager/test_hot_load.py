"""The hot load (``activity_resolution``): a session used again within the resolution is read
with plain commands in one round trip and nothing is written; everything the function load
guarantees still holds, within the documented bound."""

from __future__ import annotations

import asyncio

import pytest
import redis

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.errors import ValidationError
from redis_sessions.operations import fresh_limit

APP = "testapp"


def _stats(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    return {name[len("cmdstat_"):]: int(v["calls"])
            for name, v in client.info("commandstats").items()}


def _ran(client: redis.Redis, before: dict[str, int]) -> dict[str, int]:
    """The commands run since ``before`` (the INFO calls themselves left out)."""
    after = _stats(client)
    return {k: n - before.get(k, 0) for k, n in after.items()
            if n != before.get(k, 0) and k != "info"}


def _warm(rs: RedisSessions, token: str) -> None:
    """One function load: the manager learns the server's time from its reply."""
    rs.get(APP, token)
    assert rs._clock is not None


def _age(client: redis.Redis, key: str, seconds: int) -> None:
    client.hincrby(key, "la", -seconds)


def test_a_hot_get_is_plain_reads_in_one_round_trip(rs: RedisSessions, redis_client, namespace,
                                                   redis_server) -> None:
    if redis_server is None:
        pytest.skip("counting the server's reads needs the private server (REDIS_URL is shared)")
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    key = f"{namespace}:{APP}:{token}"
    _warm(rs, token)
    stored = redis_client.hgetall(key)
    scores = redis_client.zrange(f"{namespace}:{APP}:_sessions", 0, -1, withscores=True)
    ttl = redis_client.ttl(key)
    before = _stats(redis_client)
    reads = redis_client.info("stats")["total_reads_processed"]
    session = rs.load(APP, token)
    # one request (a user-shaped token: its session's HMGET alone) besides the two INFOs
    assert redis_client.info("stats")["total_reads_processed"] - reads == 2
    assert _ran(redis_client, before) == {"hmget": 1}
    assert session is not None and session["id"] == "user1" and session["d"] == {"a": 1}
    assert session["r"] == int(stored[b"r"]) and 0 <= session["idle"] <= 1
    # nothing written: not r, not la, not an index, not the TTL
    assert redis_client.hgetall(key) == stored
    assert redis_client.zrange(f"{namespace}:{APP}:_sessions", 0, -1, withscores=True) == scores
    assert redis_client.ttl(key) <= ttl


def test_beyond_the_resolution_the_function_records_activity(rs: RedisSessions, redis_client,
                                                             namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    _warm(rs, token)
    r = int(redis_client.hget(key, "r"))
    _age(redis_client, key, 11)  # the default resolution is 10 s
    before = _stats(redis_client)
    session = rs.get(APP, token)
    assert session is not None and session["idle"] >= 11
    assert "fcall" in _ran(redis_client, before)
    now = int(redis_client.time()[0])
    assert abs(int(redis_client.hget(key, "la")) - now) <= 1 and int(redis_client.hget(key, "r")) == r + 1
    assert abs(redis_client.zscore(f"{namespace}:{APP}:_sessions", f"{token}:user1") - now) <= 1


def test_a_killed_session_is_never_served(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    _warm(rs, token)
    assert rs.get(APP, token) is not None
    redis_client.delete(f"{namespace}:{APP}:{token}")  # as Node's kill does
    assert rs.get(APP, token) is None
    other = rs.create(APP, "user2", "10.0.0.1")
    rs.get(APP, other)
    assert rs.kill(APP, other) == 1
    assert rs.load(APP, other) is None


def test_an_expired_session_is_never_served(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=10)  # a resolution of at most 1 s
    key = f"{namespace}:{APP}:{token}"
    _warm(rs, token)
    _age(redis_client, key, 11)
    assert rs.get(APP, token) is None
    assert redis_client.exists(key) == 0  # the function ended it


def test_the_limit_is_a_tenth_of_the_ttl_and_nodes_rule_below_1() -> None:
    assert fresh_limit(7200, False, 10) == 10
    assert fresh_limit(50, False, 10) == 5
    assert fresh_limit(10, False, 10) == 1
    assert fresh_limit(7200, False, 0) == 1 and fresh_limit(7200, False, 1) == 1
    assert fresh_limit(7200, True, 0) == 0 and fresh_limit(7200, True, 10) == 9


def test_resolution_0_is_nodes_exact_rules(redis_url, redis_client, namespace) -> None:
    with RedisSessions(redis_url, namespace=namespace, wipe=0, activity_resolution=0) as exact:
        token = exact.create(APP, "user1", "10.0.0.1")
        key = f"{namespace}:{APP}:{token}"
        for expected in (1, 2, 3):  # every get runs the function: r counts every read
            assert exact.get(APP, token)["r"] == expected
        assert int(redis_client.hget(key, "r")) == 4
        _age(redis_client, key, 2)  # la moves after more than 1 s, as Node's
        exact.get(APP, token)
        assert abs(int(redis_client.hget(key, "la")) - int(redis_client.time()[0])) <= 1


def test_a_lost_user_set_is_missed_for_one_resolution_at_most(rs: RedisSessions, redis_client,
                                                             namespace) -> None:
    """The hot load does not ask the user's token set (issue 18's rule): a session whose set
    was lost is served until its activity is next recorded, at most one resolution later."""
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    _warm(rs, token)
    redis_client.delete(f"{namespace}:{APP}:us:user1")
    assert rs.get(APP, token) is not None  # within the resolution
    assert rs.set(APP, token, {"a": 1}) is not None  # a write within it does not ask either
    _age(redis_client, key, 11)
    assert rs.get(APP, token) is None  # the function checks the set: the session has ended
    assert redis_client.exists(key) == 0
    other = rs.create(APP, "user2", "10.0.0.1")
    redis_client.delete(f"{namespace}:{APP}:us:user2")
    _age(redis_client, f"{namespace}:{APP}:{other}", 11)
    assert rs.set(APP, other, {"a": 1}) is None  # a write recording activity asks it


def test_a_server_clock_ahead_of_the_estimate_runs_the_function(rs: RedisSessions, redis_client,
                                                                namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    _warm(rs, token)
    r = int(redis_client.hget(key, "r"))
    redis_client.hincrby(key, "la", 30)  # la later than any time the estimate admits
    before = _stats(redis_client)
    assert rs.get(APP, token) is not None
    assert "fcall" in _ran(redis_client, before) and int(redis_client.hget(key, "r")) == r + 1


def test_a_hot_anonymous_load_renews_nothing(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create_anonymous(APP, {"cart": [1]}, ttl=600)
    key = f"{namespace}:{APP}:an:{token}"
    assert redis_client.hget(key, "la") is not None
    _warm(rs, rs.create(APP, "user1", "10.0.0.1"))
    redis_client.expire(key, 500)
    before = _stats(redis_client)
    session = rs.load(APP, token)
    assert session is not None and session["id"] is None and session["d"] == {"cart": [1]}
    assert token[55] == "A"  # an anonymous session's shape: its key alone is read
    assert _ran(redis_client, before) == {"hmget": 1} and redis_client.ttl(key) <= 500
    _age(redis_client, key, 61)  # a tenth of its ttl
    assert rs.load(APP, token)["d"] == {"cart": [1]}
    assert redis_client.ttl(key) >= 599  # the function renewed it


def test_a_write_within_the_resolution_skips_the_indexes(rs: RedisSessions, redis_client,
                                                         namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    _age(redis_client, key, 5)
    la = redis_client.hget(key, "la")
    redis_client.expire(key, 100)
    ttl = 100
    before = _stats(redis_client)
    assert rs.set(APP, token, {"a": 1})["w"] == 2
    ran = _ran(redis_client, before)
    assert "zadd" not in ran and "expire" not in ran
    assert redis_client.hget(key, "la") == la and redis_client.ttl(key) <= ttl
    _age(redis_client, key, 10)  # now 15 s idle: the activity moves, the indexes follow
    rs.set(APP, token, {"a": 2})
    now = int(redis_client.time()[0])
    assert redis_client.hget(key, "la") != la
    assert abs(redis_client.zscore(f"{namespace}:{APP}:_sessions", f"{token}:user1") - now) <= 1
    # the Redis TTL is renewed when the minute in which the session expires changes
    _age(redis_client, key, 120)
    rs.set(APP, token, {"a": 3})
    # to the end of the expiry's minute: 7201 s at least when set, 7200 once a second ticks
    assert redis_client.ttl(key) >= 7200


def test_the_option_is_checked_and_kept(redis_url, namespace) -> None:
    for bad in (-1, 3601, 1.5, "10", True):
        with pytest.raises(ValidationError):
            RedisSessions(redis_url, namespace=namespace, wipe=0, activity_resolution=bad)
    with RedisSessions(redis_url, namespace=namespace, wipe=0, activity_resolution=3) as rs:
        assert rs.in_namespace(namespace + "x").resolution == 3


def test_the_async_manager_loads_hot_too(redis_url, redis_client, namespace) -> None:
    async def run() -> None:
        rs = AsyncRedisSessions(redis_url, namespace=namespace, wipe=0)
        try:
            token = await rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
            await rs.get(APP, token)
            r = redis_client.hget(f"{namespace}:{APP}:{token}", "r")
            before = _stats(redis_client)
            assert (await rs.load(APP, token))["d"] == {"a": 1}
            assert _ran(redis_client, before) == {"hmget": 1}
            assert redis_client.hget(f"{namespace}:{APP}:{token}", "r") == r
        finally:
            await rs.close()

    asyncio.run(run())


def test_an_anonymous_token_of_nodes_shape_still_loads(rs: RedisSessions, redis_client,
                                                       namespace) -> None:
    """A token names either kind whatever its shape: an anonymous session stored under a token
    of Node's shape (made before anonymous tokens had their own) loads through the function."""
    token = rs.create_anonymous(APP, {"a": 1})
    old_shape = token[:55] + "Z" + token[56:]
    redis_client.rename(f"{namespace}:{APP}:an:{token}", f"{namespace}:{APP}:an:{old_shape}")
    _warm(rs, rs.create(APP, "user1", "10.0.0.1"))
    before = _stats(redis_client)
    assert rs.load(APP, old_shape)["d"] == {"a": 1}
    assert "fcall" in _ran(redis_client, before)
    assert rs.get(APP, old_shape) is None  # get(): user sessions only, as Node's


def test_regenerate_keeps_the_anonymous_shape(rs: RedisSessions) -> None:
    token = rs.create_anonymous(APP, {"a": 1})
    again = rs.regenerate(APP, token, "10.0.0.1")
    assert again is not None and again["token"][55] == "A" and again["id"] is None
    assert rs.load(APP, again["token"])["d"] == {"a": 1}
    user = rs.upgrade(APP, again["token"], "user1", "10.0.0.1")
    assert user["token"][55] == "Z" and user["d"] == {"a": 1}
