"""Helpers of the web-layer tests: a small WSGI app driven by its query string, and clients."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from werkzeug.test import Client

from redis_sessions.wsgi import SessionMiddleware, get_session

APP = "webtest"


def handle(session, query: dict) -> str:
    """connect-redis-sessions' test routes (test/testservers/_routes): the body for a request."""
    if "noop" in query:
        return "EMPTY"
    if session is None:
        return "UNKOWN"
    user = session.user_id
    if "upgrade" in query:
        ttl = int(query["ttl"]) if "ttl" in query else None
        session.upgrade(query["upgrade"], ttl)
        return f"LOGGED IN - USER: {session.user_id}"
    if session.id is not None:
        if "destroy" in query:
            return f"killed + {session.destroy()}"
        if "save" in query:
            for key, value in query.items():
                if key != "save":
                    session[key] = value if value and value != "null" else None
            return f"USER: {user}\nSAVED: {json.dumps(dict(session))}"
        if "soapp" in query:
            return f"USER: {user}\n" + json.dumps({"sessions": session.soapp()})
        if "soid" in query:
            return f"USER: {user}\n" + json.dumps({"sessions": session.soid()})
        if "activity" in query:
            return f"USER: {user}\n" + json.dumps({"activity": session.activity()})
        if "destroyall" in query:
            return f"USER: {user}\n{session.destroyall()}"
        return f"USER: {user}"
    return "UNKOWN"


def routes(environ, start_response):
    """The routes as a bare WSGI app."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    body = handle(get_session(environ), query)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


def app_from_path(environ):
    """The app name is the first part of the path, as in the Node test servers."""
    return environ.get("PATH_INFO", "/").split("/")[1] or None


@pytest.fixture
def make_app(rs):
    """``make_app(wsgi_app=routes, **options)``: the middleware over ``rs`` (app name APP)."""

    def make(wsgi_app=routes, **options):
        options.setdefault("app_name", APP)
        options.setdefault("sessions", rs)
        return SessionMiddleware(wsgi_app, **options)

    return make


@pytest.fixture
def client(make_app):
    return Client(make_app())


def set_cookies(response) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def cookie_of(response, name: str = APP) -> str | None:
    """The value set for cookie ``name`` by a response ("" when it expires it)."""
    for header in set_cookies(response):
        pair = header.split(";", 1)[0]
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None


# -- the three frontends: a bare WSGI callable, Flask and Django ---------------------------------


def flask_app(**options):
    """A Flask app serving ``handle`` with ``RedisSessionInterface(**options)``."""
    import flask

    from redis_sessions.flask import RedisSessionInterface
    from redis_sessions.session import Session

    app = flask.Flask("webtest")
    app.session_interface = RedisSessionInterface(**options)

    @app.route("/", defaults={"path": ""})
    @app.route("/<path:path>")
    def view(path):
        session = flask.session._get_current_object()
        return handle(session if isinstance(session, Session) else None,
                      flask.request.args.to_dict())

    return app


class Browsers:
    """``browsers.new()`` gives a browser (own cookie jar) with ``get(path, **query) -> text``."""

    def __init__(self, kind: str, rs, **options) -> None:
        options.setdefault("sessions", rs)
        options.setdefault("app_name", app_from_path)
        self.kind = kind
        self.app = SessionMiddleware(routes, **options) if kind == "wsgi" else flask_app(**options)

    def new(self):
        return _Browser(Client(self.app) if self.kind == "wsgi" else self.app.test_client())


class _Browser:
    def __init__(self, client) -> None:
        self.client = client

    def get(self, path: str = "/", **query) -> str:
        self.last = self.client.get(path, query_string=query)
        return self.last.text


# Django's engine (a SessionStore built from the cookie alone) has no per-path app name: it is
# covered by tests/web/test_django*.py instead.
@pytest.fixture(params=["wsgi", "flask"])
def browsers(request, rs):
    return Browsers(request.param, rs)
