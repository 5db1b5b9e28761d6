"""RedisSessionInterface honours Flask's session contract (SessionMixin): permanent with
PERMANENT_SESSION_LIFETIME, new, modified, accessed and Vary, the SESSION_COOKIE_* settings,
SESSION_REFRESH_EACH_REQUEST, session_transaction(), and Flask's tagged JSON values."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import flask
import pytest
from flask.sessions import SessionMixin
from markupsafe import Markup

from redis_sessions.flask import FlaskSession, RedisSessionInterface

from .conftest import cookie_of, set_cookies

APP = "contract"
LIFETIME = timedelta(hours=3)


def make_app(backend: str = "ours", rs=None, **options) -> flask.Flask:
    """Routes that touch the session as the query says; ``backend="cookie"`` is Flask's default
    signed-cookie session (the reference for what round-trips)."""
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY="contract", PERMANENT_SESSION_LIFETIME=LIFETIME)
    if backend == "ours":
        options.setdefault("app_name", APP)
        app.session_interface = RedisSessionInterface(sessions=rs, **options)

    @app.route("/set")
    def set_():
        flask.session.update(flask.request.args.to_dict())
        return "ok"

    @app.route("/get")
    def get():
        return repr(dict(flask.session))

    @app.route("/nothing")
    def nothing():
        return "no session"

    @app.route("/permanent/<on>")
    def permanent(on):
        flask.session["seen"] = 1
        flask.session.permanent = on == "on"
        return "ok"

    @app.route("/flags")
    def flags():
        s = flask.session._get_current_object()
        return f"new={s.new} permanent={s.permanent} mixin={isinstance(s, SessionMixin)}"

    @app.route("/touch")
    def touch():
        flask.session.modified = True
        return "ok"

    @app.route("/cart")
    def cart():
        flask.session.setdefault("cart", {"items": []})
        flask.session["cart"]["items"].append(len(flask.session["cart"]["items"]))
        return "ok"

    @app.route("/types")
    def types():
        flask.session.update(VALUES)
        return "ok"

    @app.route("/types/check")
    def types_check():
        return repr({k: flask.session[k] == v and type(flask.session[k]) is type(v)
                     for k, v in VALUES.items()})

    return app


VALUES = {
    "tuple": (1, "two", (3,)),
    "bytes": b"\x00\xffbytes",
    "markup": Markup("<b>bold</b>"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "datetime": datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
    "tagged_keys": {" t": "not a tuple", " di": [1], "x": {" b": "not bytes"}},
    "nested": {"list": [(1, 2), {"u": uuid.UUID(int=7)}], "when": [datetime(2020, 1, 1,
                                                                             tzinfo=timezone.utc)]},
}


@pytest.fixture
def app(rs):
    return make_app(rs=rs)


@pytest.mark.parametrize("backend", ["cookie", "ours"])
def test_values_flasks_cookie_session_round_trips_round_trip(backend, rs):
    client = make_app(backend, rs).test_client()
    client.get("/types")
    assert client.get("/types/check").text == repr(dict.fromkeys(VALUES, True))


def test_values_through_session_transaction(app):
    client = app.test_client()
    with client.session_transaction() as session:
        assert isinstance(session, FlaskSession)
        session.update(VALUES)
    with client.session_transaction() as session:
        assert dict(session) == VALUES
        session["more"] = (4, 5)
        session[" t"] = [6]  # a top-level key is never a tag
    assert client.get("/get").text == repr({**VALUES, "more": (4, 5), " t": [6]})


def test_in_place_changes_are_saved(app):
    client = app.test_client()
    for _ in range(3):
        client.get("/cart")
    assert client.get("/get").text == repr({"cart": {"items": [0, 1, 2]}})


def test_flask_session_is_a_session_mixin_and_knows_new(app):
    client = app.test_client()
    assert client.get("/flags").text == "new=True permanent=False mixin=True"
    client.get("/set?a=1")
    assert client.get("/flags").text == "new=False permanent=False mixin=True"
    client.set_cookie(APP, "A" * 55 + "Z" + "lzz0")  # a stale cookie: new again
    assert client.get("/flags").text == "new=True permanent=False mixin=True"


def test_permanent_sets_max_age_and_the_redis_ttl(app, rs, redis_client, namespace):
    client = app.test_client()
    response = client.get("/permanent/on")
    [header] = set_cookies(response)
    seconds = int(LIFETIME.total_seconds())
    assert f"Max-Age={seconds}" in header and "Expires=" in header
    token = cookie_of(response, APP)
    assert 0 < redis_client.ttl(f"{namespace}:{APP}:an:{token}") <= seconds
    assert seconds - 60 < redis_client.ttl(f"{namespace}:{APP}:an:{token}")
    assert client.get("/flags").text == "new=False permanent=True mixin=True"
    # a user session made permanent: Node's ttl is the lifetime
    with client.session_transaction() as session:
        session.upgrade("alice")
    token = client.get_cookie(APP).value
    assert rs.get(APP, token)["ttl"] == seconds


def test_not_permanent_is_a_browser_session_cookie(app):
    client = app.test_client()
    [header] = set_cookies(client.get("/set?a=1"))
    assert "Max-Age" not in header and "Expires" not in header
    response = client.get("/permanent/off")
    assert all("Max-Age" not in h for h in set_cookies(response))


@pytest.mark.parametrize("refresh", [True, False])
def test_refresh_each_request_resends_a_permanent_cookie(rs, refresh):
    app = make_app(rs=rs)
    app.config["SESSION_REFRESH_EACH_REQUEST"] = refresh
    client = app.test_client()
    client.get("/permanent/on")
    response = client.get("/get")
    assert len(set_cookies(response)) == (1 if refresh else 0)
    client.get("/permanent/off")
    assert set_cookies(client.get("/get")) == []


def test_modified_true_forces_a_save_and_a_cookie(app):
    client = app.test_client()
    client.get("/set?a=1")
    assert set_cookies(client.get("/get")) == []
    response = client.get("/touch")
    assert len(set_cookies(response)) == 1
    assert client.get("/get").text == repr({"a": "1"})


def test_vary_cookie_only_when_the_session_was_accessed(app):
    client = app.test_client()
    client.get("/set?a=1")
    assert "Cookie" not in client.get("/nothing").vary
    assert "Cookie" in client.get("/get").vary
    assert "Cookie" in client.get("/set?b=2").vary


def test_flask_cookie_settings_are_the_defaults(rs):
    app = make_app(rs=rs)
    app.config.update(SESSION_COOKIE_DOMAIN="example.test", SESSION_COOKIE_PATH="/",
                      SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=False,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_NAME="ignored")
    [header] = set_cookies(app.test_client().get("/set?a=1", base_url="https://example.test"))
    assert header.startswith(f"{APP}=")  # the cookie is named after the app
    attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")[1:]}
    assert attributes["domain"].strip() == "Domain=example.test"
    assert "secure" in attributes and "httponly" not in attributes
    assert attributes["samesite"].strip() == "SameSite=Strict"


def test_explicit_cookie_options_win(rs):
    app = make_app(rs=rs, cookie={"samesite": "Lax", "httponly": True, "path": "/"})
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=False,
                      SESSION_COOKIE_PATH="/elsewhere")
    [header] = set_cookies(app.test_client().get("/set?a=1"))
    assert "SameSite=Lax" in header and "HttpOnly" in header and "Path=/;" in header + ";"


def test_flask_cookie_path_limits_the_session(rs):
    app = make_app(rs=rs)
    app.config["SESSION_COOKIE_PATH"] = "/app"
    client = app.test_client()
    response = client.get("/set?a=1")  # outside /app: Flask's null session refuses writes
    assert response.status_code == 500 and set_cookies(response) == []


def test_session_transaction_writes_persist(app, rs):
    client = app.test_client()
    with client.session_transaction() as session:
        session["a"] = 1
    assert client.get("/get").text == repr({"a": 1})
    with client.session_transaction() as session:
        assert session["a"] == 1
        session.upgrade("alice")
        session["b"] = [1, 2]
    [mine] = rs.soid(APP, "alice")
    assert client.get_cookie(APP).value == mine["token"]
    assert client.get("/get").text == repr({"a": 1, "b": [1, 2]})


def test_round_trips_per_request(app, command_counter):
    client = app.test_client()
    counter = command_counter()
    client.get("/get")  # no cookie
    assert counter.count == 0
    client.get("/set?a=1")
    counter = command_counter()
    client.get("/get")
    assert counter.count == 1
    counter = command_counter()
    client.get("/set?b=2")
    assert counter.count == 1  # a write without a read: sent blind, one round trip
    counter = command_counter()
    client.get("/cart")  # a read and a write
    assert counter.count == 2


def test_permanent_anonymous_session_keeps_its_lifetime(app, redis_client, namespace,
                                                        command_counter):
    client = app.test_client()
    token = cookie_of(client.get("/permanent/on"), APP)
    key = f"{namespace}:{APP}:an:{token}"
    seconds = int(LIFETIME.total_seconds())
    counter = command_counter()
    assert client.get("/flags").text == "new=False permanent=True mixin=True"
    assert counter.count == 1  # a read, not a read and a write
    assert seconds - 60 < redis_client.ttl(key) <= seconds  # the load did not cut it back


def test_a_lazy_session_nobody_touches_costs_nothing(rs, command_counter):
    client = make_app(rs=rs, lazy=True).test_client()
    client.get("/set?a=1")
    counter = command_counter()
    response = client.get("/nothing")
    assert counter.count == 0
    assert set_cookies(response) == [] and "Cookie" not in response.vary
    counter = command_counter()
    assert client.get("/get").text == repr({"a": "1"})
    assert counter.count == 1
