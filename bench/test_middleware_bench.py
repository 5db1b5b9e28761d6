"""pytest-benchmark of SessionMiddleware: ``pytest bench/test_middleware_bench.py``.

Names carry the core in use (compiled or pure: REDIS_SESSIONS_NO_EXTENSIONS=1 for the pure one).
Uses REDIS_URL, else a private server. Not part of the default test run (testpaths = tests).
"""

from __future__ import annotations

import itertools

import pytest
from middleware import APP, base_environ, caller

from redis_sessions import RedisSessions, core
from redis_sessions.wsgi import SessionMiddleware, get_session


@pytest.fixture(scope="module")
def manager(redis_url):
    rs = RedisSessions(redis_url, namespace="rsbench", wipe=0)
    yield rs
    rs.close()


counter = itertools.count()


def bare(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def reading(environ, start_response):
    get_session(environ).get("n")
    return bare(environ, start_response)


def writing(environ, start_response):
    get_session(environ)["n"] = next(counter)
    return bare(environ, start_response)


@pytest.mark.parametrize("case", ["bare", "no_cookie", "read", "write"])
def test_middleware(benchmark, manager, case):
    benchmark.name = f"middleware[{case}-{core.IMPLEMENTATION}]"
    token = manager.create(APP, "bench-user", "127.0.0.1", d={"n": 0})
    cookie = None if case in ("bare", "no_cookie") else f"{APP}={token}"
    app = {"bare": bare, "no_cookie": reading, "read": reading, "write": writing}[case]
    if case != "bare":
        app = SessionMiddleware(app, app_name=APP, sessions=manager)
    benchmark(caller(app, base_environ(cookie)))
    manager.kill(APP, token)
