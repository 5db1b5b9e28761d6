"""flask-login, flask-wtf and Authlib on RedisSessionInterface, each scenario also run on
Flask-Session's Redis backend: where the README claims parity, the same test passes on both."""

from __future__ import annotations

import pytest

from .flask_support import (
    APP,
    BACKENDS,
    FLASK_SESSION_COOKIE,
    csrf_of,
    make_login_app,
    route_token_requests_to,
)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make(backend, redis_url, namespace):
    def make(**config):
        return make_login_app(backend, redis_url, namespace, **config)
    return make


def log_in(client, user: str = "alice", remember: bool = False, **kwargs):
    token = csrf_of(client.get("/login", **kwargs).text)
    form = {"username": user, "csrf_token": token}
    if remember:
        form["remember"] = "y"
    return client.post("/login", data=form, **kwargs)


def session_cookie(backend: str) -> str:
    return APP if backend == "ours" else FLASK_SESSION_COOKIE


def test_login_required_redirects_anonymous_visits_and_keeps_the_flash(make):
    client = make().test_client()
    response = client.get("/private")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert "flashes:Please log in to access this page." in client.get("/login").text
    assert "flashes:\n" in client.get("/login").text  # shown once


def test_login_logout_round(make, backend, rs):
    client = make().test_client()
    response = log_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/whoami"
    assert client.get("/private").text == "secret alice"
    if backend == "ours":  # login_user alone made it a session of the user
        [mine] = rs.soid(APP, "alice")
        assert client.get_cookie(APP).value == mine["token"]
    response = client.get("/logout")
    assert response.status_code == 302
    if backend == "ours":  # logout_user alone ended it; the flash lives on, anonymously
        assert rs.soid(APP, "alice") == []
    assert "flashes:bye" in client.get("/login").text
    assert client.get("/private").status_code == 302
    assert client.get("/whoami").text == "anonymous"


def test_login_as_another_user_replaces_the_session(make, backend, rs):
    client = make().test_client()
    log_in(client, "alice")
    log_in(client, "bob")
    assert client.get("/private").text == "secret bob"
    if backend == "ours":
        assert rs.soid(APP, "alice") == [] and len(rs.soid(APP, "bob")) == 1


def test_csrf_rejects_a_post_without_the_token(make):
    client = make().test_client()
    client.get("/login")
    assert client.post("/login", data={"username": "alice"}).status_code == 400
    assert client.post("/login", data={"username": "alice", "csrf_token": "x"}).status_code == 400
    assert client.get("/whoami").text == "anonymous"


def test_fresh_login_required_after_a_remember_me_login(make, backend):
    client = make().test_client()
    log_in(client, remember=True)
    assert client.get("/fresh").text == "fresh alice"
    client.delete_cookie(session_cookie(backend))  # the browser session ended; remember_token not
    assert client.get("/private").text == "secret alice"  # restored from the remember cookie
    response = client.get("/fresh")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "flashes:Please log in again." in client.get("/login").text
    log_in(client)
    assert client.get("/fresh").text == "fresh alice"


def test_strong_session_protection_logs_out_another_browser(make, backend, rs):
    client = make(SESSION_PROTECTION="strong").test_client()
    log_in(client, headers={"User-Agent": "browser-A"})
    assert client.get("/private", headers={"User-Agent": "browser-A"}).text == "secret alice"
    # the same cookie from another user agent: flask-login drops the login
    assert client.get("/private", headers={"User-Agent": "browser-B"}).status_code == 302
    assert client.get("/private", headers={"User-Agent": "browser-A"}).status_code == 302
    if backend == "ours":
        assert rs.soid(APP, "alice") == []


def test_authlib_state_survives_the_redirect(make, monkeypatch):
    app = make()
    route_token_requests_to(app, monkeypatch)
    client = app.test_client()
    response = client.get("/oauth/start")
    assert response.status_code == 302 and "state=" in response.headers["Location"]
    response = client.get("/oauth/start", follow_redirects=True)
    assert response.text == "token granted"
    # a callback whose state the session does not hold is refused
    app.testing = False
    assert client.get("/oauth/callback?code=the-code&state=forged").status_code == 500


def test_round_trips_of_a_logged_in_visit(redis_url, namespace, command_counter):
    client = make_login_app("ours", redis_url, namespace).test_client()
    log_in(client)
    counter = command_counter()
    assert client.get("/private").text == "secret alice"
    assert counter.count == 1
    counter = command_counter()
    client.get("/logout")  # load, kill, store the flash in a new anonymous session
    assert counter.count == 3


def test_redis_down_a_login_is_served_not_a_500(caplog):
    """on_backend_error="anonymous" (the default): login_user during an outage answers as usual;
    the log-in is not kept (as any write during an outage), and the error is logged."""
    from tests.redis_server import RedisServer

    server = RedisServer().start()
    try:
        app = make_login_app("ours", server.url, "down", WTF_CSRF_ENABLED=False)
        client = app.test_client()
        assert client.get("/whoami").text == "anonymous"
        server.stop()
        response = client.post("/login", data={"username": "alice"})
        assert response.status_code == 302
        assert "could not follow flask-login" in caplog.text
        assert client.get("/private").status_code == 302
        app.session_interface.handler.manager.close()
    finally:
        server.stop()
