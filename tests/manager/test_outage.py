"""Redis down: BackendUnavailable within the timeout, and recovery by itself once it is back."""

from __future__ import annotations

import time

import pytest
import redis

from redis_sessions import BackendUnavailable, RedisSessions

from ..redis_server import RedisServer

APP = "testapp"


@pytest.fixture
def own_server():
    server = RedisServer().start()
    yield server
    server.stop()


def test_down_then_back(own_server: RedisServer) -> None:
    client = redis.Redis.from_url(own_server.url, socket_timeout=1, socket_connect_timeout=1)
    with RedisSessions(client, wipe=0) as rs:
        token = rs.create(APP, "user1", "10.0.0.1")
        own_server.stop()
        for call in (lambda: rs.get(APP, token), lambda: rs.set(APP, token, {"a": 1}),
                     lambda: rs.create(APP, "u", "1.1.1.1"), lambda: rs.soid(APP, "user1"),
                     rs.ping):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                call()
            assert time.monotonic() - started < 3
            assert isinstance(info.value.__cause__, redis.RedisError)
        own_server.start()  # same port, empty: the scripts are gone too
        new = rs.create(APP, "user1", "10.0.0.1")
        assert rs.get(APP, new)["id"] == "user1"


def test_restart_with_a_held_connection_needs_no_failed_call(own_server: RedisServer) -> None:
    with RedisSessions(own_server.url, wipe=0) as rs:
        token = rs.create(APP, "user1", "10.0.0.1")
        assert rs.get(APP, token) is not None
        own_server.restart()
        time.sleep(0.1)
        assert rs.get(APP, token) is None  # the server kept nothing; the call itself succeeds


def test_paused_server_times_out(own_server: RedisServer) -> None:
    client = redis.Redis.from_url(own_server.url, socket_timeout=0.5)
    with RedisSessions(client, wipe=0) as rs:
        token = rs.create(APP, "user1", "10.0.0.1")
        own_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                rs.get(APP, token)
            assert time.monotonic() - started < 2
        finally:
            own_server.resume()
        assert rs.get(APP, token) is not None
