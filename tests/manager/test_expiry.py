"""Expiry: the Redis TTL on session keys, wipe() over every index, the lazy periodic wiper."""

from __future__ import annotations

import os
import threading
import time

import pytest

from redis_sessions import RedisSessions

APP = "testapp"


def test_session_keys_carry_a_redis_ttl(rs, redis_client, namespace) -> None:
    """The session's hash expires with it; no index carries a TTL (as in Node): the wiper keeps
    them tidy. A user's token set with a TTL could be evicted alone under a volatile-* policy,
    hiding the user's sessions from killsoid (tests/manager/test_eviction.py)."""
    token = rs.create(APP, "user1", "10.0.0.1", ttl=300)
    # (to the end of the step, here 30 s, in which it expires: scripts/_lib.lua's touch)
    assert 299 <= redis_client.ttl(f"{namespace}:{APP}:{token}") <= 331
    for key in (f"{namespace}:{APP}:us:user1", f"{namespace}:{APP}:_sessions",
                f"{namespace}:{APP}:_users", f"{namespace}:SESSIONS"):
        assert redis_client.ttl(key) == -1, key


def test_redis_ttl_is_refreshed_by_activity(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=300)
    key = f"{namespace}:{APP}:{token}"
    rs.get(APP, token)  # (not yet moved: then the first move renews the TTL at once)
    redis_client.hincrby(key, "la", -15)
    rs.get(APP, token)
    assert redis_client.hget(key, "p") == b"1"  # marked: the TTL is this release's
    redis_client.expire(key, 50)
    # idle beyond the activity resolution (10 s), and its expiry in another minute
    redis_client.hincrby(key, "la", -120)
    rs.get(APP, token)
    assert redis_client.ttl(key) >= 299


def test_redis_ttl_can_be_turned_off(redis_url, redis_client, namespace) -> None:
    with RedisSessions(redis_url, namespace=namespace, wipe=0, redis_ttl=False) as mixed:
        token = mixed.create(APP, "user1", "10.0.0.1")
        mixed.get(APP, token)
        mixed.set(APP, token, {"a": 1})
    assert all(redis_client.ttl(k) == -1 for k in redis_client.scan_iter(f"{namespace}:*"))


def test_memory_is_reclaimed_without_a_wiper(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=10)
    deadline = time.monotonic() + 20
    while redis_client.exists(f"{namespace}:{APP}:{token}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not redis_client.exists(f"{namespace}:{APP}:{token}")


def _age(redis_client, namespace: str, token: str, user: str, seconds: int) -> None:
    """Make a session look ``seconds`` older, in the hash and in the expiry index."""
    key = f"{namespace}:{APP}:{token}"
    redis_client.hincrby(key, "la", -seconds)
    redis_client.zincrby(f"{namespace}:SESSIONS", -seconds, f"{APP}:{token}:{user}")


def test_wipe_cleans_every_index_and_keeps_colon_ids(rs, redis_client, namespace) -> None:
    dead = rs.create(APP, "org:1:user", "10.0.0.1", ttl=60)
    alive = rs.create(APP, "org:1:user", "10.0.0.2", ttl=60)
    other = rs.create(APP, "solo", "10.0.0.3", ttl=60)
    _age(redis_client, namespace, dead, "org:1:user", 100)
    _age(redis_client, namespace, other, "solo", 100)
    assert rs.wipe() == 2
    assert [s["token"] for s in rs.soid(APP, "org:1:user")] == [alive]
    assert redis_client.zrange(f"{namespace}:{APP}:_users", 0, -1) == [b"org:1:user"]
    assert redis_client.zrange(f"{namespace}:{APP}:_sessions", 0, -1) == [
        f"{alive}:org:1:user".encode()
    ]
    assert redis_client.zcard(f"{namespace}:SESSIONS") == 1
    assert not redis_client.exists(f"{namespace}:{APP}:us:solo")
    assert rs.wipe() == 0


def test_wipe_cleans_indexes_of_hashes_redis_already_expired(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=60)
    redis_client.delete(f"{namespace}:{APP}:{token}")  # as the Redis TTL would
    redis_client.zincrby(f"{namespace}:SESSIONS", -100, f"{APP}:{token}:user1")
    rs.wipe()
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []


def test_wipe_spares_a_session_refreshed_after_its_score(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=60)
    redis_client.zincrby(f"{namespace}:SESSIONS", -100, f"{APP}:{token}:user1")
    assert rs.wipe() == 0
    assert rs.get(APP, token) is not None


def test_wipe_in_chunks_from_many_processes_at_once(rs, redis_client, namespace, monkeypatch) -> None:
    import redis_sessions.operations as operations

    monkeypatch.setattr(operations, "CHUNK", 10)
    tokens = [rs.create(APP, f"user{i % 7}", "10.0.0.1", ttl=60) for i in range(60)]
    for i, token in enumerate(tokens):
        _age(redis_client, namespace, token, f"user{i % 7}", 100)
    results: list[int] = []
    wipers = [
        threading.Thread(target=lambda: results.append(rs.wipe())) for _ in range(4)
    ]
    for t in wipers:
        t.start()
    for t in wipers:
        t.join()
    assert sum(results) == 60
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []


def test_periodic_wiper_starts_lazily_and_stops_on_close(redis_url, namespace) -> None:
    manager = RedisSessions(redis_url, namespace=namespace, wipe=10)
    assert not manager.wiper.running
    manager.activity(APP, 600)
    assert manager.wiper.running
    manager.close()
    assert not manager.wiper.running


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_periodic_wiper_starts_again_in_a_forked_child(redis_url, namespace) -> None:
    manager = RedisSessions(redis_url, namespace=namespace, wipe=10)
    manager.activity(APP, 600)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; first use starts a new one
        ok = not manager.wiper.running
        manager.activity(APP, 600)
        ok = ok and manager.wiper.running
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    manager.close()


def test_redis_ttl_is_not_touched_when_the_activity_time_stays(rs, redis_client, namespace) -> None:
    """la moves only after more than 1 s idle (Node's rule), and the TTLs follow la + ttl: a read
    within that second leaves them as they are (less work per request)."""
    token = rs.create(APP, "user1", "10.0.0.1", ttl=300)
    key = f"{namespace}:{APP}:{token}"
    redis_client.expire(key, 100)  # a marker: an unneeded refresh would overwrite it
    rs.get(APP, token)
    assert redis_client.ttl(key) <= 100


def test_no_resave_expiry_is_fixed_in_redis_too(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=100, no_resave=True)
    key = f"{namespace}:{APP}:{token}"
    redis_client.hincrby(key, "la", -30)
    redis_client.expire(key, 71)  # what 30 s later would show
    rs.get(APP, token)
    # to the end of the step (10 s: a tenth of the ttl) in which it expires, not beyond
    assert 69 <= redis_client.ttl(key) <= 71 + 10
