"""The ASGI routes of tests/asgi/conftest.py under the ASGI middleware, for ``uvicorn
--workers`` (an import string): the manager is built from ASGI_TEST_REDIS_URL and
ASGI_TEST_NAMESPACE when a worker imports this module."""

import os

from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.asgi import SessionMiddleware
from tests.asgi.conftest import APP, routes

app = SessionMiddleware(routes, app_name=APP, sessions=AsyncRedisSessions(
    os.environ["ASGI_TEST_REDIS_URL"], namespace=os.environ["ASGI_TEST_NAMESPACE"], wipe=0))
