"""The optional local cache: invalidated across processes through pub/sub, flushed when it drops."""

from __future__ import annotations

import time

import pytest

from redis_sessions import RedisSessions

APP = "testapp"


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def cached(redis_url, namespace):
    manager = RedisSessions(redis_url, namespace=namespace, wipe=0, cache_time=30)
    manager.activity(APP, 600)
    manager.cache.get(APP, "A" * 64)  # starts the listener
    assert _wait(lambda: manager.cache._listening), "cache subscription never confirmed"
    yield manager
    manager.close()


def test_cached_get_skips_redis(cached: RedisSessions, rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    first = cached.get(APP, token)
    second = cached.get(APP, token)
    assert first == second  # served from the cache: r not incremented
    assert rs.get(APP, token)["r"] == 2


def test_a_write_in_another_process_invalidates(cached: RedisSessions, rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    assert cached.get(APP, token)["d"] == {"a": 1}
    rs.set(APP, token, {"a": 2})  # another manager: only the pub/sub message tells the cache
    assert _wait(lambda: cached.get(APP, token)["d"] == {"a": 2})
    rs.kill(APP, token)
    assert _wait(lambda: cached.get(APP, token) is None)


def test_own_writes_are_seen_at_once(cached: RedisSessions) -> None:
    token = cached.create(APP, "user1", "10.0.0.1", d={"a": 1})
    cached.get(APP, token)
    cached.set(APP, token, {"a": 2})
    assert cached.get(APP, token)["d"] == {"a": 2}


def test_dropped_subscription_flushes_and_bypasses(cached: RedisSessions, redis_client) -> None:
    token = cached.create(APP, "user1", "10.0.0.1")
    cached.get(APP, token)
    assert cached.cache._entries
    redis_client.client_kill_filter(_type="pubsub")
    assert _wait(lambda: not cached.cache._listening or not cached.cache._entries)
    # while not listening, nothing is served from or kept in the cache
    r_before = cached.get(APP, token)["r"]
    assert _wait(lambda: cached.cache._listening), "listener did not come back"
    assert cached.get(APP, token)["r"] > r_before
