"""The apps bench/http.py serves under gunicorn: one factory, one stack per call.

    gunicorn 'bench.http_apps:create("flask_rs")'   (run from the repository root)

Every stack answers ``/login`` (makes the session bench/http.py then sends the cookie of),
``/read`` (reads one session value) and ``/write`` (sets one value, without reading any), all
with the same small body. The bare stacks do no session work at all: they are the baselines.
``flask_roundtrip`` is bare Flask plus one raw Redis round trip per request (a GET over a plain
socket, read with hiredis, no client library): the ceiling of any session kept in Redis.
The Redis is ``BENCH_REDIS_URL``; keys live under the namespace/prefix ``httpbench``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any

APP = "httpbench"
NAMESPACE = "httpbench"
FLASK_SESSION_PREFIX = "httpbench:fs:"
USER = "bench"
BODY = b"hello"
STACKS = ("flask", "flask_roundtrip", "flask_session", "flask_rs", "wsgi", "wsgi_roundtrip",
          "wsgi_rs")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def _value() -> Callable[[], str]:
    """A new value on every call, unique across the workers: each write really changes data."""
    counter = itertools.count()
    prefix = f"{os.getpid()}-"
    return lambda: prefix + str(next(counter))


def _raw_roundtrip() -> Callable[[], object]:
    """One GET over a raw socket per call (bench/_common.RawConnection), connected on first use:
    in the worker, after the fork. (gunicorn runs from the repository root: ``bench`` imports.)"""
    from bench._common import RawConnection

    connection = RawConnection(os.environ["BENCH_REDIS_URL"])
    packed = f"*2\r\n$3\r\nGET\r\n${len(APP) + 6}\r\n{APP}:floor\r\n".encode()
    return lambda: connection.call(packed)


def _flask(stack: str) -> WSGIApp:
    import flask

    app = flask.Flask(f"httpbench_{stack}")
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True  # Flask's default, stated
    uses_session = stack not in ("flask", "flask_roundtrip")
    roundtrip = _raw_roundtrip() if stack == "flask_roundtrip" else None
    if stack == "flask_session":
        import redis
        from flask_session import Session as FlaskSession

        app.config.update(SESSION_TYPE="redis", SESSION_KEY_PREFIX=FLASK_SESSION_PREFIX,
                          SESSION_REDIS=redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
        FlaskSession(app)
    elif stack == "flask_rs":
        from redis_sessions import RedisSessions
        from redis_sessions.flask import RedisSessionInterface

        manager = RedisSessions(os.environ["BENCH_REDIS_URL"], namespace=NAMESPACE, wipe=0)
        app.session_interface = RedisSessionInterface(app_name=APP, sessions=manager)
    new_value = _value()

    @app.route("/login")
    def login() -> bytes:
        if uses_session:
            upgrade = getattr(flask.session, "upgrade", None)
            if upgrade is not None:
                upgrade(USER)  # redis-sessions: a logged-in user's session
            flask.session["n"] = new_value()
        return BODY

    @app.route("/read")
    def read() -> bytes:
        if uses_session:
            flask.session.get("n")
        elif roundtrip is not None:
            roundtrip()
        return BODY

    @app.route("/write")
    def write() -> bytes:
        if uses_session:
            flask.session["n"] = new_value()
        elif roundtrip is not None:
            roundtrip()
        return BODY

    return app


def _wsgi(stack: str) -> WSGIApp:
    from redis_sessions.wsgi import get_session

    new_value = _value()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
    roundtrip = _raw_roundtrip() if stack == "wsgi_roundtrip" else None

    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path not in ("/login", "/read", "/write"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        if roundtrip is not None:
            roundtrip()
        session = get_session(environ)
        if session is not None:
            if path == "/login":
                session.upgrade(USER)
                session["n"] = new_value()
            elif path == "/read":
                session.get("n")
            else:
                session["n"] = new_value()
        start_response("200 OK", headers)
        return [BODY]

    if stack in ("wsgi", "wsgi_roundtrip"):
        return app
    from redis_sessions import RedisSessions
    from redis_sessions.wsgi import SessionMiddleware

    manager = RedisSessions(os.environ["BENCH_REDIS_URL"], namespace=NAMESPACE, wipe=0)
    return SessionMiddleware(app, app_name=APP, sessions=manager)


def create(stack: str) -> WSGIApp:
    """The WSGI app of one stack (one of ``STACKS``)."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}; one of {', '.join(STACKS)}")
    return _flask(stack) if stack.startswith("flask") else _wsgi(stack)
