"""Helpers of the reliability tests: call a WSGI app with a raw environ, and a small app."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest

from redis_sessions.wsgi import SessionMiddleware, get_session

APP = "reltest"


class Response:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.code = int(status.split()[0])
        self.headers = headers
        self.body = body

    @property
    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def cookie(self, name: str = APP) -> str | None:
        """The value our cookie was set to ("" when expired), None when not touched."""
        value = None
        for header in self.set_cookies:
            if header.startswith(name + "="):
                value = header.split(";", 1)[0][len(name) + 1 :]
        return value


def call(app: Callable, cookie: str | None = None, path: str = "/", query: str = "",
         **extra: Any) -> Response:
    """One request through ``app``; ``cookie`` is the raw HTTP_COOKIE string as a WSGI server
    would put it in the environ (latin-1 decoded bytes)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    environ.update(extra)
    seen: dict[str, Any] = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Response(seen["status"], seen["headers"], body)


def routes(environ, start_response):
    """/ -> who am I; /login?user=U; /set?k=v...; /blind?k=v... (no read); /logout; /logout-all;
    /big?keys=N&bytes=M."""
    session = get_session(environ)
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/login":
        session.upgrade(query["user"])
    elif path == "/set":
        for key, value in query.items():
            session[key] = value
    elif path == "/logout":
        session.destroy()
    elif path == "/logout-all":
        session.destroyall()
    elif path == "/blind":  # writes without reading: saved blind, in the only round trip
        for key, value in query.items():
            session[key] = value
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"written"]
    elif path == "/big":
        prefix = query.get("prefix", "k")
        for i in range(int(query.get("keys", "0"))):
            session[f"{prefix}{i}"] = i
        if "bytes" in query:
            session["blob"] = "x" * int(query["bytes"])
    body = repr((session.id, dict(session))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def make_app(rs):
    """``make_app(**options)``: SessionMiddleware(routes) over ``rs`` with app name APP."""

    def make(wsgi_app=routes, **options):
        options.setdefault("app_name", APP)
        options.setdefault("sessions", rs)
        return SessionMiddleware(wsgi_app, **options)

    return make
