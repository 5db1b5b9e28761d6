"""RedisSessionInterface: flask.session is a redis-sessions Session (issue 4, point 7)."""

from __future__ import annotations

import flask
import pytest

from redis_sessions.session import Session

from .conftest import APP, cookie_of, flask_app


@pytest.fixture
def app(rs):
    app = flask_app(app_name=APP, sessions=rs)

    @app.route("/boom")
    def boom():
        flask.session["lost"] = 1
        raise RuntimeError("boom")

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
    assert counter.count == 1
    counter = command_counter()
    client.get("/?save=1&a=2")
    assert counter.count == 2
    anonymous = app.test_client()
    counter = command_counter()
    assert anonymous.get("/").text == "UNKOWN"
    assert counter.count == 0


def test_flask_view_exception_saves_nothing(app, rs):
    app.testing = False  # let Flask turn the exception into a 500 response (save_session runs)
    client = app.test_client()
    token = cookie_of(client.get("/?upgrade=alice"))
    assert client.get("/boom").status_code == 500
    assert "d" not in rs.get(APP, token)


def test_flask_outside_cookie_path_gets_the_null_session(rs):
    app = flask_app(app_name=APP, sessions=rs, cookie={"path": "/app"})
    client = app.test_client()
    assert client.get("/elsewhere").text == "UNKOWN"
    assert client.get("/app/?upgrade=alice").text == "LOGGED IN - USER: alice"
