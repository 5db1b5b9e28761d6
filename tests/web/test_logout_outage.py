"""A logout while Redis fails (issue 18, item 2): it happens, or it fails visibly (an exception the
app sees, whatever ``on_backend_error`` says; a 503 when the app lets it out), and the cookie is
expired in every case. Each front door, against a server of the test's own: at maxmemory under
``noeviction`` (the load is refused, the kill still runs) and stopped (nothing runs).
"""

from __future__ import annotations

import warnings

import pytest
import redis
from werkzeug.test import Client

from redis_sessions import BackendError, RedisSessions
from redis_sessions.wsgi import SessionMiddleware, get_session

from ..redis_server import RedisServer
from .conftest import APP, cookie_of


@pytest.fixture
def server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def admin(server):
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def rs(server):
    """A manager whose calls fail fast once the server is gone."""
    client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    manager = RedisSessions(client, wipe=0)
    yield manager
    manager.close()
    client.close()


def out_of_memory(admin: redis.Redis) -> None:
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write-flagged command is refused


def memory_back(admin: redis.Redis) -> None:
    admin.config_set("maxmemory", 0)


def routes(environ, start_response):
    session = get_session(environ)
    path = environ["PATH_INFO"]
    if path == "/login":
        session.upgrade("alice")
        body = "in"
    elif path == "/logout":
        body = f"logged out {session.destroy()}"
    elif path == "/logout-all":
        body = f"logged out everywhere {session.destroyall()}"
    elif path == "/others":
        try:
            body = f"logged out elsewhere {session.destroyothers()}"
        except BackendError:
            body = "try again"
    elif path == "/careful-logout":
        try:
            body = f"logged out {session.destroy()}"
        except BackendError:
            body = "try again"
    else:
        body = str(session.user_id)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


# -- the WSGI middleware (the session model every front door shares) -----------------------------


@pytest.mark.parametrize("policy", ["anonymous", "raise"])
def test_wsgi_logout_at_maxmemory_happens(rs, admin, policy) -> None:
    client = Client(SessionMiddleware(routes, app_name=APP, sessions=rs, on_backend_error=policy))
    token = cookie_of(client.get("/login"))
    other = rs.create(APP, "alice", "10.0.0.2")
    out_of_memory(admin)
    response = client.get("/logout")
    assert response.text == "logged out 1"  # today's code: "logged out 0", the cookie kept
    assert cookie_of(response) == ""
    memory_back(admin)
    assert rs.get(APP, token) is None
    assert rs.get(APP, other) is not None  # that device only


@pytest.mark.parametrize("policy", ["anonymous", "raise"])
def test_wsgi_logout_with_redis_down_is_a_503_with_the_cookie_expired(server, rs, policy) -> None:
    client = Client(SessionMiddleware(routes, app_name=APP, sessions=rs, on_backend_error=policy))
    assert cookie_of(client.get("/login"))
    server.stop()
    response = client.get("/logout")
    assert response.status_code == 503
    assert cookie_of(response) == ""


def test_wsgi_a_failed_logout_reaches_the_app(server, rs) -> None:
    client = Client(SessionMiddleware(routes, app_name=APP, sessions=rs))
    client.get("/login")
    server.stop()
    response = client.get("/careful-logout")
    assert response.status_code == 200 and response.text == "try again"
    assert cookie_of(response) == ""


def test_wsgi_logout_everywhere_at_maxmemory_fails_visibly(rs, admin) -> None:
    """The load was refused, so the user is unknown: all devices cannot be logged out."""
    client = Client(SessionMiddleware(routes, app_name=APP, sessions=rs))
    token = cookie_of(client.get("/login"))
    out_of_memory(admin)
    response = client.get("/logout-all")
    assert response.status_code == 503 and cookie_of(response) == ""
    memory_back(admin)
    assert client.get("/").text == "None"  # the browser dropped its cookie
    assert rs.get(APP, token) is not None  # not logged out: the app was told so


def test_wsgi_logging_out_the_other_devices_at_maxmemory_fails_visibly(rs, admin) -> None:
    """The load was refused, so the user is unknown: never a silent "0 devices logged out"."""
    client = Client(SessionMiddleware(routes, app_name=APP, sessions=rs))
    client.get("/login")
    other = rs.create(APP, "alice", "10.0.0.2")
    out_of_memory(admin)
    response = client.get("/others")
    assert response.text == "try again"  # the devices merge's code: "logged out elsewhere 0"
    memory_back(admin)
    assert rs.get(APP, other) is not None
    assert client.get("/others").text == "logged out elsewhere 1"
    assert rs.get(APP, other) is None


# -- Flask with flask-login -----------------------------------------------------------------------


def _flask_app(server):
    from .flask_support import make_login_app

    app = make_login_app("ours", server.url, "rs", WTF_CSRF_ENABLED=False)
    manager = app.session_interface.handler.manager
    fast = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    app.session_interface.handler.manager = RedisSessions(fast, wipe=0)
    manager.close()
    return app


def test_flask_login_logout_user_at_maxmemory_happens(server, admin) -> None:
    from .flask_support import APP

    app = _flask_app(server)
    rs = app.session_interface.handler.manager
    client = app.test_client()
    client.post("/login", data={"username": "alice"})
    token = client.get_cookie(APP).value
    assert client.get("/private").text == "secret alice"
    out_of_memory(admin)
    response = client.get("/logout")
    assert response.status_code == 302
    assert client.get_cookie(APP) is None  # expired
    memory_back(admin)
    assert rs.get(APP, token) is None  # today's code: still a live session of alice
    rs.close()


@pytest.mark.parametrize("policy", ["anonymous", "raise"])
def test_flask_login_logout_user_with_redis_down_raises_to_the_view(server, policy) -> None:
    from .flask_support import APP

    app = _flask_app(server)
    handler = app.session_interface.handler
    handler.on_backend_error, handler.raise_errors = policy, policy == "raise"
    app.testing = False  # Flask answers 500 for the view's exception
    client = app.test_client()
    client.post("/login", data={"username": "alice"})
    assert client.get_cookie(APP) is not None
    server.stop()
    response = client.get("/logout")
    assert response.status_code == 500  # today's code: 302 "bye", the cookie kept
    if policy == "anonymous":
        assert client.get_cookie(APP) is None
    # with "raise", flask-login's own read of the session (to find the user) raises before the
    # logout runs, as any use of the session does in that mode: a failure the app sees, and the
    # session (and so the cookie) untouched
    app.session_interface.handler.manager.close()


# -- Django's logout() --------------------------------------------------------------------------


@pytest.fixture
def django_rs(rs):
    from .django_support import configure

    configure()
    from django.test import override_settings

    with override_settings(SESSION_ENGINE="redis_sessions.django",
                           REDIS_SESSIONS={"app_name": APP, "sessions": rs}):
        yield rs


def _django_log_in():
    from django.test import Client as DjangoClient

    from .django_support import PASSWORD, make_user

    user = make_user()
    client = DjangoClient(raise_request_exception=False)
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}
                       ).status_code == 302
    return client, client.cookies["sessionid"].value


def test_django_logout_at_maxmemory_happens(django_rs, admin) -> None:
    client, key = _django_log_in()
    out_of_memory(admin)
    response = client.get("/logout/")
    assert response.content == b"bye"
    assert response.cookies["sessionid"].value == ""
    memory_back(admin)
    assert django_rs.get(APP, key) is None  # today's code: still alive


def test_django_logout_with_redis_down_fails_with_the_cookie_expired(server, django_rs) -> None:
    client, key = _django_log_in()
    server.stop()
    response = client.get("/logout/")
    assert response.status_code == 500  # today's code: 200 "bye", the session left alive
    assert response.cookies["sessionid"].value == ""


# -- ASGI -----------------------------------------------------------------------------------------


def test_asgi_logout_at_maxmemory_happens_and_with_redis_down_is_a_503(server, admin) -> None:
    import asyncio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from redis_sessions.aio import AsyncRedisSessions
    from redis_sessions.asgi import SessionMiddleware as AsgiMiddleware

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        session = scope["session"]
        if scope["path"] == "/login":
            await session.upgrade("alice")
            body = b"in"
        else:
            body = f"logged out {await session.destroy()}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    manager = AsyncRedisSessions(redis.asyncio.Redis.from_url(
        server.url, socket_timeout=1, socket_connect_timeout=1), wipe=0)
    with TestClient(AsgiMiddleware(app, app_name=APP, sessions=manager)) as client:
        token = client.get("/login").cookies[APP]
        out_of_memory(admin)
        response = client.get("/logout")
        assert response.text == "logged out 1"
        assert response.headers["set-cookie"].startswith(f"{APP}=;")  # expired
        memory_back(admin)
        assert client.portal.call(manager.get, APP, token) is None
        client.cookies.set(APP, client.get("/login").cookies[APP])
        server.stop()
        response = client.get("/logout")
        assert response.status_code == 503
        assert response.headers["set-cookie"].startswith(f"{APP}=;")
        client.portal.call(manager.close)
    asyncio.set_event_loop(None)
