"""A Redis that answers but cannot run the library fails with ONE clear error of its own.

Real servers, configured each way: FCALL and FUNCTION renamed away (what a Redis before 7.0 looks
like to the library), FUNCTION alone renamed, an ACL user who may not load the missing library or
may not call it. The error is ``BackendUnsupported``, names what is needed, and quotes nothing of
the server's reply (which echoes the library's Lua, the keys and the token). The WSGI middleware
serves anonymous sessions and logs that Redis cannot run the library, never "Redis unavailable".
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
import redis

from redis_sessions import BackendError, BackendUnsupported, RedisSessions, SessionMiddleware
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.embedded import free_port
from redis_sessions.scripts import LIBRARY_NAME

APP = "capapp"
TOKEN = "Zq" + "7" * 62  # a well-formed token: it must not come back in the message
NO_FUNCTIONS = ("--rename-command", "FCALL", "", "--rename-command", "FUNCTION", "")
NOT_LOADED_USER = ["noload", "on", ">secret", "~rs:*", "&rs:cache", "-@all", "+@read", "+@write",
                   "+fcall", "+@pubsub", "+@connection", "+time", "-function"]


def assert_clean(message: str) -> None:
    """Nothing of the reply: no Lua, no key, no function name, no token fragment."""
    for leaked in ("#!lua", "redis.call", "rs:", "rs_", LIBRARY_NAME, TOKEN[:12], "args beginning"):
        assert leaked not in message, (leaked, message)


def operations(rs: RedisSessions) -> list:
    return [lambda: rs.create(APP, "u1", "10.0.0.1"), lambda: rs.get(APP, TOKEN),
            lambda: rs.soid(APP, "u1"), lambda: rs.kill(APP, TOKEN)]


@pytest.mark.parametrize("config", [NO_FUNCTIONS, ("--rename-command", "FUNCTION", "")],
                         ids=["no-fcall-no-function", "no-function"])
def test_a_server_without_functions_names_what_is_needed(server_factory, config) -> None:
    server = server_factory(*config)
    with RedisSessions(server.url, wipe=0) as rs:
        for operation in operations(rs):
            with pytest.raises(BackendUnsupported) as caught:
                operation()
            message = str(caught.value)
            assert "Redis >= 7.0 or Valkey >= 7.2" in message
            assert re.search(r"does not know the (FCALL|FUNCTION) command", message), message
            assert_clean(message)


def test_async_manager_raises_the_same(server_factory) -> None:
    server = server_factory(*NO_FUNCTIONS)

    async def main() -> str:
        async with AsyncRedisSessions(server.url, wipe=0) as rs:
            with pytest.raises(BackendUnsupported) as caught:
                await rs.get(APP, TOKEN)
            with pytest.raises(BackendUnsupported):
                await rs.create(APP, "u1", "10.0.0.1")
            return str(caught.value)

    message = asyncio.run(main())
    assert "Redis >= 7.0 or Valkey >= 7.2" in message
    assert_clean(message)


def test_a_user_who_may_not_load_the_missing_library(server_factory) -> None:
    server = server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", *NOT_LOADED_USER)
    url = server.url.replace("redis://", "redis://noload:secret@")
    with RedisSessions(url, wipe=0) as rs:
        with pytest.raises(BackendUnsupported) as caught:
            rs.create(APP, "u1", "10.0.0.1")
        message = str(caught.value)
        assert "may not run FUNCTION LOAD" in message and "+function|load" in message
        assert_clean(message)
        # the remedy the message gives: the library loaded once by a user who may
        with RedisSessions(server.url, wipe=0) as loader:
            loader.get(APP, TOKEN)
        token = rs.create(APP, "u1", "10.0.0.1")
        assert rs.get(APP, token)["id"] == "u1"
    admin.close()


def test_a_user_who_may_not_call_functions(server_factory) -> None:
    server = server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "nofcall", "on", ">secret", "~rs:*", "-@all",
                          "+@read", "+@write", "+@connection")
    url = server.url.replace("redis://", "redis://nofcall:secret@")
    with RedisSessions(url, wipe=0) as rs:
        with pytest.raises(BackendUnsupported) as caught:
            rs.get(APP, TOKEN)
    message = str(caught.value)
    assert "may not run FCALL" in message and "+fcall" in message
    assert_clean(message)
    admin.close()


def test_other_errors_are_not_capability_errors(rs, namespace) -> None:
    """A plain Redis error stays a BackendError (a wrong-type key, here), not the new class."""
    rs.client.set(f"{namespace}:{APP}:_sessions", "not a sorted set")
    with pytest.raises(BackendError) as caught:
        rs.soapp(APP, 600)
    assert not isinstance(caught.value, BackendUnsupported)


def test_a_cluster_node_without_functions(server_factory) -> None:
    # a one-node cluster; its bus on a port of its own (port + 10000 may be taken or too high)
    server = server_factory("--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                            *NO_FUNCTIONS)
    node = redis.Redis.from_url(server.url)
    node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.monotonic() + 10
    while b"cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
        assert time.monotonic() < deadline, "the one-node cluster did not come up"
        time.sleep(0.05)
    node.close()
    with RedisSessions(server.url, wipe=0, layout="cluster") as rs:
        with pytest.raises(BackendUnsupported) as caught:
            rs.create(APP, "u1", "10.0.0.1")
        assert_clean(str(caught.value))

    async def main() -> str:
        async with AsyncRedisSessions(server.url, wipe=0, layout="cluster") as ars:
            with pytest.raises(BackendUnsupported) as caught:
                await ars.create(APP, "u1", "10.0.0.1")
            return str(caught.value)

    message = asyncio.run(main())
    assert "Redis >= 7.0 or Valkey >= 7.2" in message
    assert_clean(message)


# -- the WSGI middleware: Redis answers, so it is not "unavailable" ------------------------------


def _app(environ, start_response):
    from redis_sessions import get_session

    session = get_session(environ)
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _request(app, cookie: str | None = None) -> str:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.1",
               "wsgi.input": None}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    assert body == b"ok"
    return status[0]


def test_middleware_logs_unsupported_not_unavailable(server_factory, caplog) -> None:
    server = server_factory(*NO_FUNCTIONS)
    app = SessionMiddleware(_app, app_name=APP, redis=server.url)
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        assert _request(app, f"{APP}={TOKEN}") == "200 OK"  # load fails: served anonymous
        assert _request(app) == "200 OK"  # a visitor's first write fails to save
        assert _request(app, f"{APP}={TOKEN}") == "200 OK"
    text = caplog.text
    assert "unavailable" not in text.lower(), text
    cannot = [r for r in caplog.records if r.msg.startswith("Redis cannot run redis-sessions")]
    assert len(cannot) == 1 and cannot[0].levelno == logging.ERROR
    assert "Redis >= 7.0 or Valkey >= 7.2" in text
    assert TOKEN[:12] not in text and "#!lua" not in text
    app.manager.close()


def test_middleware_raise_policy_raises_it(server_factory) -> None:
    server = server_factory(*NO_FUNCTIONS)
    app = SessionMiddleware(_app, app_name=APP, redis=server.url, on_backend_error="raise")
    with pytest.raises(BackendUnsupported):
        _request(app, f"{APP}={TOKEN}")
    app.manager.close()
