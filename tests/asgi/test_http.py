"""Over real HTTP: uvicorn on loopback and httpx cookie jars; a WSGI server beside it sharing the
sessions and the cookie (issue 13, point 3); many concurrent requests on one session."""

import asyncio
import json
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import redis.asyncio

from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.wsgi import SessionMiddleware as WSGISessionMiddleware

from ..web.conftest import routes as wsgi_routes
from .conftest import APP, routes


def data_of(body: str) -> dict:
    return json.loads(body.split("DATA: ", 1)[1])


def test_anonymous_login_devices_logout_everywhere(ars, serve):
    url = serve(SessionMiddleware(routes, app_name=APP, sessions=ars))
    with httpx.Client(base_url=url) as laptop, httpx.Client(base_url=url) as phone:
        assert laptop.get("/", params={"write": 1, "cart": "apple"}).text.startswith("WROTE")
        anonymous = laptop.cookies[APP]
        assert laptop.get("/", params={"upgrade": "ann"}).text == "LOGGED IN - USER: ann"
        assert laptop.cookies[APP] != anonymous
        assert data_of(laptop.get("/", params={"data": 1}).text) == {"cart": "apple"}
        phone.get("/", params={"upgrade": "ann"})
        body = phone.get("/", params={"soid": 1}).text
        assert len(json.loads(body.split("\n")[1])["sessions"]) == 2
        assert phone.get("/", params={"destroyall": 1}).text == "USER: ann\n2"
        assert APP not in phone.cookies  # expired
        assert laptop.get("/").text == "UNKOWN"


def test_many_concurrent_requests_on_one_session_lose_nothing(redis_url, namespace, serve,
                                                             redis_client):
    client = redis.asyncio.Redis.from_url(redis_url, client_name="rs-asgi-http")
    manager = AsyncRedisSessions(client, namespace=namespace, wipe=0)
    url = serve(SessionMiddleware(routes, app_name=APP, sessions=manager))
    with httpx.Client(base_url=url) as browser:
        browser.get("/", params={"upgrade": "ann"})
        cookie = browser.cookies[APP]

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, cookies={APP: cookie}, limits=limits) as c:
            responses = await asyncio.gather(*[
                c.get("/", params={"save": 1, f"k{i}": str(i)}) for i in range(200)])
        return [r.status_code for r in responses]

    assert set(asyncio.run(burst())) == {200}
    with httpx.Client(base_url=url, cookies={APP: cookie}) as browser:
        data = data_of(browser.get("/", params={"data": 1}).text)
    assert data == {f"k{i}": str(i) for i in range(200)}
    # every request of the server's event loop went through one pipelined connection
    names = [c["name"] for c in redis_client.client_list()]
    assert names.count("rs-asgi-http") == 1


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def wsgi_serve():
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_wsgi_and_an_asgi_server_share_sessions_and_cookies(rs, ars, serve, wsgi_serve):
    asgi = serve(SessionMiddleware(routes, app_name=APP, sessions=ars))
    wsgi = wsgi_serve(WSGISessionMiddleware(wsgi_routes, app_name=APP, sessions=rs))
    with httpx.Client() as browser:  # one cookie jar: cookies ignore the port
        browser.get(asgi, params={"write": 1, "cart": "apple"})  # anonymous, stored by ASGI
        assert browser.get(wsgi, params={"upgrade": "ann"}).text == "LOGGED IN - USER: ann"
        assert data_of(browser.get(asgi, params={"data": 1}).text) == {"cart": "apple"}
        assert browser.get(wsgi, params={"save": 1, "n": "1"}).text.startswith("USER: ann")
        assert data_of(browser.get(asgi, params={"data": 1}).text) == {"cart": "apple", "n": "1"}
        assert browser.get(asgi, params={"destroy": 1}).text == "killed + 1"
        assert browser.get(wsgi).text == "UNKOWN"
