"""Helpers of the ASGI tests: connect-redis-sessions' routes as a raw ASGI app, as Starlette and
as FastAPI apps, test-client and real-HTTP browsers, and a uvicorn server on loopback."""

# (no "from __future__ import annotations": FastAPI reads the routes' annotations at runtime)
import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl

import warnings

import httpx
import pytest

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.asgi import AsyncSession, SessionMiddleware, get_session

from ..redis_server import RedisServer

APP = "webtest"


async def handle(session: AsyncSession | None, query: dict) -> str:
    """tests/web/conftest.py's ``handle`` (connect-redis-sessions' test routes), awaited."""
    if "noop" in query:
        return "EMPTY"
    if session is None:
        return "UNKOWN"
    user = session.user_id
    if "upgrade" in query:
        ttl = int(query["ttl"]) if "ttl" in query else None
        await session.upgrade(query["upgrade"], ttl)
        return f"LOGGED IN - USER: {session.user_id}"
    if "write" in query:  # an anonymous visitor's write (not in Node's routes)
        for key, value in query.items():
            if key != "write":
                session[key] = value
        return f"WROTE: {json.dumps(dict(session))}"
    if session.id is not None:
        if "destroy" in query:
            return f"killed + {await session.destroy()}"
        if "save" in query:
            for key, value in query.items():
                if key != "save":
                    session[key] = value if value and value != "null" else None
            return f"USER: {user}\nSAVED: {json.dumps(dict(session))}"
        if "soapp" in query:
            return f"USER: {user}\n" + json.dumps({"sessions": await session.soapp()})
        if "soid" in query:
            return f"USER: {user}\n" + json.dumps({"sessions": await session.soid()})
        if "activity" in query:
            return f"USER: {user}\n" + json.dumps({"activity": await session.activity()})
        if "destroyall" in query:
            return f"USER: {user}\n{await session.destroyall()}"
        if "data" in query:
            return f"USER: {user}\nDATA: {json.dumps(dict(session))}"
        return f"USER: {user}"
    return "UNKOWN"


async def lifespan(scope, receive, send) -> bool:
    """Answer the lifespan protocol (test clients start and stop apps); True when it was one."""
    if scope["type"] != "lifespan":
        return False
    while True:
        message = await receive()
        kind = message["type"].rsplit(".", 1)[-1]
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return True


async def routes(scope, receive, send) -> None:
    """The routes as a bare ASGI app (http)."""
    if await lifespan(scope, receive, send):
        return
    query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
    body = (await handle(scope.get("session"), query)).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def app_from_path(scope) -> str | None:
    """The app name is the first part of the path, as in the Node test servers."""
    return scope["path"].split("/")[1] or None


def starlette_app(**options):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def view(request):
        session = request.scope.get("session")
        return PlainTextResponse(await handle(session, dict(request.query_params)))

    return Starlette(routes=[Route("/{path:path}", view)],
                     middleware=[Middleware(SessionMiddleware, **options)])


def fastapi_app(**options):
    from typing import Annotated

    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import PlainTextResponse

    app = FastAPI()
    app.add_middleware(SessionMiddleware, **options)

    @app.get("/typed/me", response_class=PlainTextResponse)
    async def me(session: Annotated[AsyncSession, Depends(get_session)]) -> str:
        return f"typed: {session.user_id}"

    @app.get("/{path:path}", response_class=PlainTextResponse)
    async def view(request: Request, path: str) -> str:
        session = request.scope.get("session")
        if session is not None:
            assert get_session(request) is session is request.session
        return await handle(session, dict(request.query_params))

    return app


class Server:
    """uvicorn serving ``app`` on a free loopback port, in a thread of this process."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def ars(redis_url: str, namespace: str) -> Iterator[AsyncRedisSessions]:
    """An AsyncRedisSessions in the test's namespace, without the wiper."""
    manager = AsyncRedisSessions(redis_url, namespace=namespace, wipe=0)
    yield manager
    asyncio.run(manager.close())


@pytest.fixture
def serve():
    """``serve(app) -> base URL``: uvicorn on loopback, stopped after the test."""
    servers = []

    def start(app) -> str:
        servers.append(Server(app))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test alone, to stop and start."""
    server = RedisServer().start()
    yield server
    server.stop()


class Browsers:
    """``browsers.new()`` gives a browser (own cookie jar) with ``get(path, **query) -> text``:
    Starlette's or FastAPI's test client, or httpx over real HTTP to uvicorn (raw ASGI app)."""

    def __init__(self, kind: str, ars: AsyncRedisSessions, serve, **options) -> None:
        options.setdefault("sessions", ars)
        options.setdefault("app_name", app_from_path)
        self.kind = kind
        if kind == "starlette":
            self.app = starlette_app(**options)
        elif kind == "fastapi":
            self.app = fastapi_app(**options)
        else:
            self.url = serve(SessionMiddleware(routes, **options))
        self.clients: list = []

    def new(self) -> "_Browser":
        if self.kind == "uvicorn":
            client = httpx.Client(base_url=self.url)
        else:
            client = TestClient(self.app).__enter__()  # one event loop for the browser's life
        self.clients.append(client)
        return _Browser(client)

    def close(self) -> None:
        for client in self.clients:
            if self.kind == "uvicorn":
                client.close()
            else:
                client.__exit__(None, None, None)


class _Browser:
    def __init__(self, client) -> None:
        self.client = client

    def get(self, path: str = "/", **query) -> str:
        self.last = self.client.get(path, params=query)
        return self.last.text


@pytest.fixture(params=["starlette", "fastapi", "uvicorn"])
def browsers(request, ars, serve):
    made = Browsers(request.param, ars, serve)
    yield made
    made.close()
