"""RedisSessionInterface: flask.session is a redis-sessions Session (issue 4, point 7)."""

from __future__ import annotations

import flask
import pytest

from redis_sessions import SessionTooLarge
from redis_sessions.session import Session

from .conftest import APP, cookie_of, flask_app


@pytest.fixture
def app(rs):
    app = flask_app(app_name=APP, sessions=rs)

    @app.route("/boom")
    def boom():
        flask.session["kept"] = 1
        flask.flash("something broke")
        raise RuntimeError("boom")

    @app.route("/flashes")
    def flashes():
        return "|".join(flask.get_flashed_messages()) + f" kept={flask.session.get('kept')}"

    @app.route("/blob")
    def blob():
        flask.session["counter"] = flask.session.get("counter", 0) + 1
        try:
            flask.session["blob"] = "x" * 70000
        except SessionTooLarge:
            return "too large"
        return "stored"

    @app.route("/many")
    def many():
        flask.session["counter"] = flask.session.get("counter", 0) + 1
        for i in range(1001):  # too large only as a whole: known when saved
            flask.session[f"k{i}"] = i
        return "stored"

    @app.route("/sid")
    def sid():
        return f"{flask.session.sid} {flask.session.id}"

    @app.route("/kind")
    def kind():
        session = flask.session._get_current_object()
        return f"{type(session).__name__} {isinstance(session, Session)}"

    return app


def test_flask_session_is_a_redis_session_with_its_methods(app, rs):
    client = app.test_client()
    assert client.get("/kind").text == "FlaskSession True"
    response = client.get("/?upgrade=alice")
    token = cookie_of(response)
    assert response.text == "LOGGED IN - USER: alice" and rs.get(APP, token)["id"] == "alice"
    assert client.get("/?save=1&a=1").text == 'USER: alice\nSAVED: {"a": "1"}'
    assert rs.get(APP, token)["d"] == {"a": "1"}
    response = client.get("/?destroy=1")
    assert response.text == "killed + 1" and cookie_of(response) == ""


def test_flask_round_trips(app, command_counter):
    client = app.test_client()
    client.get("/?upgrade=alice")
    client.get("/?save=1&warm=up")
    counter = command_counter()
    client.get("/")
    # a read within the activity resolution: one round trip of plain reads, no write at all
    assert counter.count == 1 and counter.writes == []
    counter = command_counter()
    client.get("/?save=1&a=2")
    assert counter.count == 2
    anonymous = app.test_client()
    counter = command_counter()
    assert anonymous.get("/").text == "UNKOWN"
    assert counter.count == 0


def test_flask_view_exception_keeps_what_was_set_before_it(app, rs):
    """As Flask's own cookie session (and Flask-Session): the session is saved on the error
    response, so what the view set and flashed before it raised is there next time."""
    app.testing = False  # let Flask turn the exception into a 500 response (save_session runs)
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    assert client.get("/boom").status_code == 500
    assert rs.get(APP, token)["d"]["kept"] == 1
    assert client.get("/flashes").text == "something broke kept=1"


def test_flask_a_value_too_large_is_refused_when_assigned(app, rs):
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    assert client.get("/blob").text == "too large"
    assert rs.get(APP, token)["d"] == {"counter": 1}  # the rest of the request is kept


def test_flask_a_session_too_large_as_a_whole_is_a_500(app, rs):
    """on_backend_error="anonymous" is for Redis outages: the app's own SessionTooLarge is
    raised when the session is saved (Flask answers 500), never a silent 200."""
    app.testing = False
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    assert client.get("/many").status_code == 500
    assert "d" not in rs.get(APP, token)  # nothing of that request was stored


def test_flask_session_sid_is_flask_sessions_name_for_the_id(app):
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    assert client.get("/sid").text == f"{token} {token}"


def test_flask_outside_cookie_path_gets_the_null_session(rs):
    app = flask_app(app_name=APP, sessions=rs, cookie={"path": "/app"})
    client = app.test_client()
    assert client.get("/elsewhere").text == "UNKOWN"
    assert client.get("/app/?upgrade=alice").text == "LOGGED IN - USER: alice"


def test_flask_testing_mode_keeps_sessions_apart(rs, namespace):
    """app.testing (issue 18, item 7): the sessions of the app's tests live in test_<namespace>,
    emptied first (what a crashed run left) and at exit; the developer's are untouched."""
    from redis_sessions.testing import purge

    developer = rs.create(APP, "alice", "10.0.0.1")
    stale = rs.in_namespace(f"test_{namespace}")
    stale.create(APP, "alice", "10.0.0.9")
    app = flask_app(app_name=APP, sessions=rs)
    app.testing = True
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    twin = app.session_interface.handler.manager
    try:
        assert twin.namespace == f"test_{namespace}"
        assert [s["token"] for s in twin.soid(APP, "alice")] == [token]
        assert client.get("/?destroyall=1").text == "USER: alice\n1"
        assert [s["token"] for s in rs.soid(APP, "alice")] == [developer]
    finally:
        purge(twin)
        stale.close()
    shared = flask_app(app_name=APP, sessions=rs, test_namespace=None)
    shared.testing = True
    assert shared.test_client().get("/?upgrade=bob").status_code == 200
    assert len(rs.soid(APP, "bob")) == 1
