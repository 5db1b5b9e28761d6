"""Issue 17, item 2 and the matrix of servers: 50 concurrent logged-in clients over real HTTP
under gunicorn (sync, gthread, gevent; each with and without --preload), uWSGI (its default
pre-fork mode, the app loaded in the master, and --lazy-apps) and uvicorn --workers 2. Every
answer must name the client's own user and value; no 5xx; no Traceback in the server's log.

``gunicorn -k gevent --preload`` (and uWSGI's default) build the manager before the worker
patches (or forks), which is where state made too early mixes users."""

from __future__ import annotations

import pytest

from ..web.flask_support import Gunicorn
from .conftest import AsgiFlow, FlaskFlow, crowd, uvicorn, uwsgi

SECONDS = 3.0

GUNICORN = {
    "sync": ("--workers", "2"),
    "gthread": ("--workers", "2", "-k", "gthread", "--threads", "4"),
    "gevent": ("--workers", "2", "-k", "gevent", "--worker-connections", "100"),
}


def check(name: str, seen, log: str) -> None:
    print(seen.line(name), flush=True)
    for sample in seen.samples:
        print("   ", sample, flush=True)
    assert seen.wrong == 0, seen.samples
    assert seen.server_errors == 0, seen.samples
    assert seen.failed == 0, seen.samples
    assert seen.requests > 4 * seen.clients, f"{name}: hardly any request went through"
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("preload", [False, True], ids=["", "preload"])
@pytest.mark.parametrize("worker", list(GUNICORN))
def test_gunicorn(redis_url, namespace, worker, preload):
    if worker == "gevent":
        pytest.importorskip("gevent", reason="gunicorn -k gevent needs gevent (the test extra)")
    options = GUNICORN[worker] + (("--preload",) if preload else ())
    server = Gunicorn("ours", redis_url, namespace, options)
    try:
        seen = crowd(server.url, FlaskFlow, seconds=SECONDS)
    finally:
        log = server.stop()
    check(f"gunicorn -k {worker}{' --preload' if preload else ''}", seen, log)


@pytest.mark.parametrize("lazy", [False, True], ids=["prefork", "lazy-apps"])
def test_uwsgi(redis_url, namespace, lazy):
    server = uwsgi(redis_url, namespace, lazy)
    try:
        seen = crowd(server.url, FlaskFlow, seconds=SECONDS)
    finally:
        log = server.stop()
    check(server.name, seen, log)


def test_uvicorn_workers(redis_url, namespace):
    server = uvicorn(redis_url, namespace)
    try:
        seen = crowd(server.url, AsgiFlow, seconds=SECONDS)
    finally:
        log = server.stop()
    check(server.name, seen, log)
