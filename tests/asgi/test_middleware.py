"""The ASGI middleware: cookies, anonymous sessions, login, devices, round trips, Vary, errors,
streaming, websockets, FastAPI's typed dependency (Starlette's test client over a raw ASGI app)."""

import json
import logging

import pytest
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from redis_sessions import scripts
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.asgi import AsyncSession, SessionMiddleware, get_session
from redis_sessions.errors import BackendUnavailable

from .conftest import APP, TestClient, fastapi_app, lifespan, routes


@pytest.fixture
def client(ars, redis_client):
    """A test client (one event loop) over the raw routes app; its connection already open and
    the library loaded (a first FCALL would cost one more round trip)."""
    redis_client.function_load(scripts.LIBRARY.decode(), replace=True)
    with TestClient(SessionMiddleware(routes, app_name=APP, sessions=ars)) as c:
        c.portal.call(ars.ping)
        yield c


def cookie(response, name=APP):
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    return None


def test_no_cookie_no_redis_command_and_nothing_stored(client, command_counter):
    counter = command_counter()
    response = client.get("/", params={"data": 1})
    assert response.text == "UNKOWN"
    assert "set-cookie" not in response.headers
    assert counter.count == 0


def test_anonymous_write_then_read_then_write_round_trips(client, ars, command_counter):
    client.portal.call(ars.activity, APP, 600)  # a manager's first call checks the server once
    counter = command_counter()
    response = client.get("/", params={"write": 1, "cart": "apple"})
    assert counter.count == 1  # create_anonymous
    token = cookie(response)
    assert token and response.headers["vary"] == "Cookie"
    counter = command_counter()
    assert client.get("/", params={"data": 1}).text == 'USER: None\nDATA: {"cart": "apple"}'
    assert counter.count == 1  # load
    counter = command_counter()
    client.get("/", params={"write": 1, "more": "pear"})
    assert counter.count == 2  # load + one save
    assert cookie(client.get("/")) is None  # unchanged: no Set-Cookie
    found = client.portal.call(ars.load, APP, token)
    assert found["id"] is None and found["d"] == {"cart": "apple", "more": "pear"}


def test_login_soid_and_logout_everywhere(ars):
    laptop = TestClient(SessionMiddleware(routes, app_name=APP, sessions=ars))
    phone = TestClient(SessionMiddleware(routes, app_name=APP, sessions=ars))
    with laptop, phone:
        laptop.get("/", params={"write": 1, "cart": "apple"})
        anonymous = laptop.cookies[APP]
        assert laptop.get("/", params={"upgrade": "ann"}).text == "LOGGED IN - USER: ann"
        assert laptop.cookies[APP] != anonymous  # a new token; the old one is gone
        assert laptop.portal.call(ars.load, APP, anonymous) in (None, {"id": None,
                                                                     "rotated": True})
        assert laptop.get("/", params={"data": 1}).text == 'USER: ann\nDATA: {"cart": "apple"}'
        phone.get("/", params={"upgrade": "ann"})
        devices = json.loads(phone.get("/", params={"soid": 1}).text.split("\n")[1])["sessions"]
        assert sorted(s["token"] for s in devices) == sorted(
            [laptop.cookies[APP], phone.cookies[APP]])
        response = phone.get("/", params={"destroyall": 1})
        assert response.text == "USER: ann\n2"
        assert cookie(response) == ""  # expired
        assert laptop.get("/").text == "UNKOWN"


def test_signed_cookie_round_trip(ars):
    app = SessionMiddleware(routes, app_name=APP, sessions=ars, secret_keys=["k1"])
    with TestClient(app) as c:
        c.get("/", params={"upgrade": "bob"})
        value = c.cookies[APP]
        assert "." in value and value.split(".")[0] in str(c.portal.call(ars.soid, APP, "bob"))
        assert c.get("/").text == "USER: bob"
        c.cookies.clear()
        c.cookies.set(APP, value.split(".")[0])  # unsigned: refused
        assert c.get("/").text == "UNKOWN"


def test_callable_app_name_receives_the_scope(ars):
    seen = []

    def name(scope):
        seen.append(scope["type"])
        return scope["path"].strip("/") or None

    with TestClient(SessionMiddleware(routes, app_name=name, sessions=ars)) as c:
        assert c.get("/shop", params={"upgrade": "u"}).text == "LOGGED IN - USER: u"
        assert c.get("/").text == "UNKOWN"
    assert seen == ["http", "http"]


def test_vary_is_merged_and_absent_when_the_session_is_unused(ars):
    async def app(scope, receive, send):
        if await lifespan(scope, receive, send):
            return
        if scope["path"] == "/use":
            scope["session"].get("x")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"vary", b"Accept-Encoding")]})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars)) as c:
        assert c.get("/").headers["vary"] == "Accept-Encoding"
        assert c.get("/use").headers["vary"] == "Accept-Encoding, Cookie"


def test_changes_while_streaming_are_saved_at_the_end(ars):
    async def app(scope, receive, send):
        if await lifespan(scope, receive, send):
            return
        session = scope["session"]
        session["a"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        session["b"] = 2  # after the headers: saved when the app returns
        await send({"type": "http.response.body", "body": b"x"})

    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars)) as c:
        c.get("/")
        found = c.portal.call(ars.load, APP, c.cookies[APP])
    assert found["d"] == {"a": 1, "b": 2}


def test_an_exception_in_the_app_saves_nothing(ars):
    async def app(scope, receive, send):
        if await lifespan(scope, receive, send):
            return
        scope["session"]["lost"] = 1
        raise RuntimeError("boom")

    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars),
                    raise_server_exceptions=False) as c:
        response = c.get("/")
    assert response.status_code == 500 and "set-cookie" not in response.headers


def test_websocket_scope_gets_the_session_and_saves_at_the_end(ars):
    async def chat(ws: WebSocket):
        session: AsyncSession = get_session(ws)
        await ws.accept()
        await ws.send_text(f"hello {session.user_id}")
        session["said"] = await ws.receive_text()
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/ws", chat)])
    with TestClient(SessionMiddleware(routes, app_name=APP, sessions=ars)) as http:
        http.get("/", params={"upgrade": "carol"})
        jar = http.cookies[APP]
    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars)) as c:
        c.cookies.set(APP, jar)
        with c.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hello carol"
            ws.send_text("hi")
        found = c.portal.call(ars.load, APP, jar)
    assert found["d"] == {"said": "hi"}


def test_fastapi_typed_dependency(ars):
    with TestClient(fastapi_app(app_name=APP, sessions=ars)) as c:
        c.get("/x", params={"upgrade": "dora"})
        assert c.get("/typed/me").text == "typed: dora"


def test_get_session_without_the_middleware():
    async def view(request):
        get_session(request)

    app = Starlette(routes=[Route("/", view)])

    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        TestClient(app).get("/")


def test_the_manager_must_be_async(rs):
    with pytest.raises(TypeError):
        SessionMiddleware(routes, app_name=APP, sessions=rs)
    with pytest.raises(TypeError):
        SessionMiddleware(routes, app_name=APP, sessions=AsyncRedisSessions(), redis="redis://x")


def test_blocking_paths_say_await(ars):
    """Nothing reaches the blocking driver; if something did, it would say what to do."""

    async def app(scope, receive, send):
        if await lifespan(scope, receive, send):
            return
        session = scope["session"]
        session._token, session._data = "x" * 64, None  # as if never loaded
        with pytest.raises(TypeError, match="await"):
            session.id
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars)) as c:
        assert c.get("/").status_code == 204


def test_lazy_writes_blind_in_one_round_trip_and_reads_after_load(client, ars,
                                                                   command_counter):
    async def app(scope, receive, send):
        if await lifespan(scope, receive, send):
            return
        session = scope["session"]
        if scope["path"] == "/write":
            session["n"] = 1  # never read: saved blind
        else:
            with pytest.raises(TypeError, match="load"):
                session.get("n")
            await session.load()
            assert session["n"] == 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client.get("/", params={"upgrade": "lazy"})
    token = client.cookies[APP]
    with TestClient(SessionMiddleware(app, app_name=APP, sessions=ars, lazy=True)) as c:
        c.portal.call(ars.ping)
        c.cookies.set(APP, token)
        counter = command_counter()
        assert c.get("/write").status_code == 204
        assert counter.count == 1
        assert c.get("/read").status_code == 204


# -- Redis down ----------------------------------------------------------------------------------


def test_redis_down_anonymous_mode_serves_anonymous_sessions(own_server, caplog):
    manager = AsyncRedisSessions(own_server.url, namespace="down", wipe=0)
    with TestClient(SessionMiddleware(routes, app_name=APP, sessions=manager)) as c:
        c.get("/", params={"upgrade": "eve"})
        token = c.cookies[APP]
        own_server.stop()
        with caplog.at_level(logging.INFO, logger="redis_sessions"):
            for _ in range(2):
                response = c.get("/", params={"data": 1})
                assert response.status_code == 200 and response.text == "UNKOWN"
            response = c.get("/", params={"write": 1, "k": "v"})  # the write fails: logged
            assert response.status_code == 200
        assert len([r for r in caplog.records if "serving anonymous" in r.message]) == 1
        assert c.cookies[APP] == token  # the cookie survives an outage
        own_server.start()  # an empty server: requests work again
        assert c.get("/").text == "UNKOWN"
        c.get("/", params={"upgrade": "eve"})
        assert c.get("/").text == "USER: eve"
        c.portal.call(manager.close)


def test_redis_down_raise_mode_propagates(own_server):
    manager = AsyncRedisSessions(own_server.url, namespace="down", wipe=0)
    with TestClient(SessionMiddleware(routes, app_name=APP, sessions=manager,
                                      on_backend_error="raise")) as c:
        c.get("/", params={"upgrade": "eve"})
        own_server.stop()
        with pytest.raises(BackendUnavailable):
            c.get("/")
        c.portal.call(manager.close)

