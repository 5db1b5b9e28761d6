"""Authlib's Starlette client keeps its OAuth state in ``request.session``: it round-trips
through redis-sessions (an anonymous session, stored at the redirect, read at the callback)."""

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from redis_sessions.asgi import SessionMiddleware

from .conftest import APP, TestClient

# Authlib asks for httpx2 (its import warns once, whatever the filters); httpx works the same
pytestmark = pytest.mark.filterwarnings("ignore:The httpx module is deprecated")
starlette_client = pytest.importorskip("authlib.integrations.starlette_client")


def test_oauth_state_survives_the_redirect(ars):
    oauth = starlette_client.OAuth()
    oauth.register("demo", client_id="cid", client_secret="secret",
                   authorize_url="https://idp.example/authorize",
                   access_token_url="https://idp.example/token")

    async def login(request):
        return await oauth.demo.authorize_redirect(request, "http://testserver/callback")

    async def callback(request):
        state = request.query_params["state"]
        data = await oauth.demo.framework.get_state_data(request.session, state)
        return PlainTextResponse(data["redirect_uri"] if data else "no state")

    app = Starlette(routes=[Route("/login", login), Route("/callback", callback)],
                    middleware=[Middleware(SessionMiddleware, app_name=APP, sessions=ars)])
    with TestClient(app) as c:
        response = c.get("/login", follow_redirects=False)
        assert response.status_code == 302 and APP in response.cookies
        state = response.headers["location"].split("state=")[1].split("&")[0]
        assert c.get("/callback", params={"state": state}).text == "http://testserver/callback"
        assert c.get("/callback", params={"state": "forged"}).text == "no state"
