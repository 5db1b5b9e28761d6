"""The optional local cache: invalidated across processes through pub/sub, flushed when it drops."""

from __future__ import annotations

import threading
import time

import pytest

from redis_sessions import RedisSessions
from redis_sessions.cache import LocalCache
from redis_sessions.keys import cache_message

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
    # activity_resolution=0: every get runs the function, whose r tells a cache hit from a read
    manager = RedisSessions(redis_url, namespace=namespace, wipe=0, cache_time=30,
                            activity_resolution=0)
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


# -- a reply read before another process's write must not be cached after its invalidation --------


def _invalidations_handled(cached: RedisSessions, rs: RedisSessions, marker: str) -> None:
    """Wait until ``cached``'s listener handled every message published so far.

    ``marker`` is a session in ``cached``'s cache; a write to it from ``rs`` publishes one more
    message, and messages arrive in order: once the marker is dropped, the earlier ones were too.
    """
    assert cache_message(APP, marker) in cached.cache._entries
    rs.set(APP, marker, {"n": time.monotonic_ns()})
    assert _wait(lambda: cache_message(APP, marker) not in cached.cache._entries)


def _cached_marker(cached: RedisSessions, rs: RedisSessions) -> str:
    marker = rs.create(APP, "marker", "10.0.0.9")
    cached.get(APP, marker)
    return marker


def _late_put(cached: RedisSessions, rs: RedisSessions, write) -> None:
    """Make ``cached``'s next get() store its reply only after ``write`` ran in another process
    and this process handled its invalidation: the interleaving that used to keep stale data."""
    marker = _cached_marker(cached, rs)
    put = cached.cache.put

    def late_put(*args):
        cached.cache.put = put  # type: ignore[method-assign]
        write()
        _invalidations_handled(cached, rs, marker)
        put(*args)

    cached.cache.put = late_put  # type: ignore[method-assign]


def test_a_kill_racing_a_get_is_honoured(cached: RedisSessions, rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    _late_put(cached, rs, lambda: rs.kill(APP, token))
    assert cached.get(APP, token)["d"] == {"a": 1}  # read just before the logout
    assert cached.get(APP, token) is None  # the logout holds: nothing stale was cached


def test_a_set_racing_a_get_is_seen(cached: RedisSessions, rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    _late_put(cached, rs, lambda: rs.set(APP, token, {"a": 2}))
    assert cached.get(APP, token)["d"] == {"a": 1}
    assert cached.get(APP, token)["d"] == {"a": 2}


def test_a_ticket_is_void_after_its_key_is_dropped_or_the_cache_flushed(
    cached: RedisSessions, rs: RedisSessions
) -> None:
    cache = cached.cache
    marker = _cached_marker(cached, rs)
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    other = rs.create(APP, "user2", "10.0.0.2")
    ticket = cache.ticket()
    session = rs.get(APP, token)
    rs.kill(APP, token)
    _invalidations_handled(cached, rs, marker)
    cache.put(APP, token, session, ticket)
    assert cache.get(APP, token) is None
    # the drop of one key leaves the tickets of the others good; a flush voids them all
    cache.put(APP, other, rs.get(APP, other), ticket)
    assert cache.get(APP, other) is not None
    ticket = cache.ticket()
    cache.flush()
    cache.put(APP, other, rs.get(APP, other), ticket)
    assert cache.get(APP, other) is None
    # a ticket taken after the invalidation is good
    cache.put(APP, other, rs.get(APP, other), cache.ticket())
    assert cache.get(APP, other) is not None


def test_the_drop_history_is_bounded(redis_url, namespace) -> None:
    manager = RedisSessions(redis_url, namespace=namespace, wipe=0, cache_time=30, cache_max=3)
    try:
        cache = manager.cache
        cache.get(APP, "A" * 64)
        assert _wait(lambda: cache._listening), "cache subscription never confirmed"
        ticket = cache.ticket()
        for i in range(10):
            cache.drop(APP, f"{i:064d}")
        assert len(cache._dropped) <= 3
        # forgotten drops void the older tickets: nothing stale can slip through
        cache.put(APP, f"{0:064d}", {"d": {}}, ticket)
        assert cache.get(APP, f"{0:064d}") is None
    finally:
        manager.close()


def test_nothing_is_cached_before_the_subscription_is_confirmed(redis_client, namespace) -> None:
    cache = LocalCache(redis_client, f"{namespace}:cache", 30, 10)  # its listener never started
    assert cache.ticket() is None
    cache.put(APP, "A" * 64, {"d": {}}, 0)
    assert not cache._entries


# -- this process's own writes: no read may serve the old state once the write returned -----------


class _GetDuringWrite:
    """Make the next write of ``cached`` run a get() of ``token`` (in another thread, as a
    concurrent request would) right after its first cache invalidation (``step``: drop, or flush
    for the writes of many sessions), that is before the write's script runs: the get then reads
    the old state from Redis and offers it to the cache. Meanwhile the listener's
    handling of invalidation messages waits (as when they come from across a network), so only
    the write's own ordering can keep the old state out (a context manager: until its exit).
    ``read``: what that get() read."""

    def __init__(self, cached: RedisSessions, token: str, step: str = "drop") -> None:
        cache = cached.cache
        self.read: list = []
        self._held = threading.Event()
        real_step, real_drop = getattr(cache, step), cache.drop
        armed = [True]

        def invalidate_then_get(*args):
            real_step(*args)
            if armed[0] and threading.current_thread().name != "redis-sessions-cache":
                armed[0] = False  # once: the invalidation before the script
                thread = threading.Thread(target=lambda: self.read.append(cached.get(APP, token)))
                thread.start()
                thread.join()

        def drop(*args):
            if threading.current_thread().name == "redis-sessions-cache":
                self._held.wait(10)  # a message: handled after the test looked
            (invalidate_then_get if step == "drop" else real_drop)(*args)

        setattr(cache, step, invalidate_then_get)
        cache.drop = drop  # type: ignore[method-assign]

    def __enter__(self) -> _GetDuringWrite:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held.set()


@pytest.mark.parametrize("write, step", [
    (lambda rs, token: rs.kill(APP, token), "drop"),
    (lambda rs, token: rs.killsoid(APP, "user1"), "flush"),
    (lambda rs, token: rs.killall(APP), "flush"),
])
def test_no_read_serves_a_session_this_process_killed(cached: RedisSessions, write, step) -> None:
    token = cached.create(APP, "user1", "10.0.0.1", d={"a": 1})
    with _GetDuringWrite(cached, token, step) as race:
        write(cached, token)
        assert race.read[0]["d"] == {"a": 1}  # the racing get() read it before the kill
        assert cached.get(APP, token) is None


def test_no_read_serves_data_this_process_replaced(cached: RedisSessions) -> None:
    token = cached.create(APP, "user1", "10.0.0.1", d={"a": 1})
    with _GetDuringWrite(cached, token) as race:
        cached.set(APP, token, {"a": 2})
        assert race.read[0]["d"] == {"a": 1}
        assert cached.get(APP, token)["d"] == {"a": 2}


@pytest.mark.parametrize("rotate", [
    lambda rs, token: rs.upgrade(APP, token, "user1", "10.0.0.1"),
    lambda rs, token: rs.regenerate(APP, token, "10.0.0.1"),
])
def test_no_read_serves_a_token_this_process_rotated(cached: RedisSessions, rotate) -> None:
    token = cached.create(APP, "user1", "10.0.0.1", d={"a": 1})
    with _GetDuringWrite(cached, token) as race:
        new = rotate(cached, token)["token"]
        assert race.read[0]["d"] == {"a": 1}
        assert cached.get(APP, token) is None
        assert cached.get(APP, new)["d"] == {"a": 1}
