"""The ASGI devices endpoints (``redis_sessions.devices.asgi``): Starlette routes under a Mount
and the FastAPI router, through their test clients and over real HTTP (uvicorn on loopback,
httpx cookie jars), with real browsers' User-Agents; and AsyncSession's device methods and the
awaited sign-in callback."""

# (no "from __future__ import annotations": FastAPI reads the routes' annotations at runtime)
import re
import warnings

import httpx
import pytest

from redis_sessions.asgi import SessionMiddleware, get_session

from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

APP = "asgidev"
BASE = "/account/devices"


def starlette_app(ars, **options):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from redis_sessions.devices.asgi import devices_routes

    async def login(request):
        session = get_session(request)
        await session.upgrade(request.query_params["user"])
        return PlainTextResponse("in")

    async def whoami(request):
        session = get_session(request)
        await session.load()
        return PlainTextResponse(session.user_id or "anonymous")

    return Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/whoami", whoami),
                             Mount(BASE, routes=devices_routes)],
                     middleware=[Middleware(SessionMiddleware, app_name=APP, sessions=ars,
                                            lazy=True, **options)])


def fastapi_app(ars, **options):
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

    from redis_sessions.devices.asgi import devices_router

    app = FastAPI()
    app.add_middleware(SessionMiddleware, app_name=APP, sessions=ars, **options)

    @app.post("/login", response_class=PlainTextResponse)
    async def login(request: Request, user: str) -> str:
        await get_session(request).upgrade(user)
        return "in"

    @app.get("/whoami", response_class=PlainTextResponse)
    async def whoami(request: Request) -> str:
        return get_session(request).user_id or "anonymous"

    app.include_router(devices_router, prefix=BASE)
    return app


@pytest.fixture(params=["starlette-client", "fastapi-client", "starlette-http", "fastapi-http"])
def browsers(request, ars, serve):
    """``new_browser(agent)``: an httpx-style client with a cookie jar and that User-Agent."""
    framework, kind = request.param.split("-")
    app = (starlette_app if framework == "starlette" else fastapi_app)(ars)
    clients = []
    if kind == "client":
        def new(agent):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = TestClient(app, headers={"user-agent": agent.user_agent})
            clients.append(client)
            return client
    else:
        base = serve(app)

        def new(agent):
            client = httpx.Client(base_url=base, headers={"user-agent": agent.user_agent},
                                  timeout=10)
            clients.append(client)
            return client
    yield new
    for client in clients:
        client.close()


JSON = {"Content-Type": "application/json"}
TOKEN = re.compile(r"[A-Za-z0-9]{55}Z[0-9a-z]{8}")


def test_the_devices_endpoints(browsers, ars, rs, caplog) -> None:
    caplog.set_level("DEBUG")
    laptop, phone, tablet = (browsers(a) for a in (FIREFOX_LINUX, SAFARI_IPHONE, CHROME_ANDROID))
    stranger = browsers(FIREFOX_LINUX)
    for browser in (laptop, phone, tablet):
        assert browser.post("/login", params={"user": "alice"}).text == "in"
    browsers(FIREFOX_LINUX).post("/login", params={"user": "bob"})
    node_token = rs.create(APP, "alice", "198.51.100.4")

    reply = laptop.get(BASE + "/")
    assert reply.status_code == 200 and not TOKEN.search(reply.text)
    devices = reply.json()["devices"]
    assert [d["current"] for d in devices] == [True, False, False, False]
    assert devices[0]["label"] == "Firefox 133 on Linux"
    assert {d["label"] for d in devices} == {"Firefox 133 on Linux", "Mobile Safari 17 on iOS 17",
                                             "Chrome Mobile 131 on Android 14", "Unknown device"}
    assert all(d["last_active"].endswith("Z") for d in devices)
    phone_handle = next(d["handle"] for d in devices if "iOS" in d["label"])
    node_handle = next(d["handle"] for d in devices if d["user_agent"] is None)
    bobs = rs.devices(APP, "bob")[0]["handle"]

    # not signed in: 401; a POST that is not JSON: 415 (the CSRF defence); nothing ends
    assert stranger.get(BASE + "/").status_code == 401
    assert stranger.post(BASE + "/end", json={"handle": phone_handle}).status_code == 401
    assert laptop.post(BASE + "/end", data={"handle": phone_handle}).status_code == 415
    assert laptop.post(BASE + "/end-others").status_code == 415
    assert len(phone.get(BASE + "/").json()["devices"]) == 4

    reply = laptop.post(BASE + "/end", json={"handle": phone_handle})
    assert reply.status_code == 200, reply.text
    assert reply.json()["ended"] == 1 and len(reply.json()["devices"]) == 3
    assert reply.json()["message"] == "Logged out Mobile Safari 17 on iOS 17."
    assert phone.get(BASE + "/").status_code == 401
    for handle in (bobs, phone_handle, "nope"):
        reply = laptop.post(BASE + "/end", json={"handle": handle})
        assert reply.status_code in (404, 422) and not TOKEN.search(reply.text)
    assert len(rs.devices(APP, "bob")) == 1
    assert laptop.post(BASE + "/end", json={"handle": node_handle}).json()["ended"] == 1
    assert rs.get(APP, node_token) is None

    phone.post("/login", params={"user": "alice"})
    reply = laptop.post(BASE + "/end-others", headers=JSON)
    assert reply.status_code == 200 and reply.json()["ended"] == 2
    assert [d["current"] for d in reply.json()["devices"]] == [True]
    assert tablet.get("/whoami").text == "anonymous" and phone.get("/whoami").text == "anonymous"

    own = laptop.get(BASE + "/").json()["devices"][0]["handle"]
    reply = laptop.post(BASE + "/end", json={"handle": own})
    assert reply.status_code == 200 and reply.json()["devices"] == []
    assert laptop.get("/whoami").text == "anonymous"
    assert rs.soid(APP, "alice") == []
    # the server side's log lines (httpx/httpcore log the client's own headers at DEBUG)
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not TOKEN.search("\n".join(r.getMessage() for r in server))


def test_the_sign_in_callback_may_be_a_coroutine(ars) -> None:
    heard = []

    async def on_sign_in(session, device):
        heard.append((session.user_id, device.label, device.current))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(starlette_app(ars, on_sign_in=on_sign_in),
                            headers={"user-agent": SAFARI_IPHONE.user_agent})
    with client:
        client.post("/login", params={"user": "zoe"})
    assert heard == [("zoe", "Mobile Safari 17 on iOS 17", True)]


def test_the_fastapi_router_is_typed(ars) -> None:
    from redis_sessions.devices import asgi

    schema = fastapi_app(ars).openapi()
    listing = schema["paths"][BASE + "/"]["get"]["responses"]["200"]["content"]
    assert listing["application/json"]["schema"]["$ref"].endswith("DevicesModel")
    assert "DeviceModel" in schema["components"]["schemas"]
    assert asgi.devices_router is asgi.devices_router  # built once
