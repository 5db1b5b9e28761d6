"""Serving the demo: a threaded stdlib HTTP server, the Redis behind it, and a clean stop.

``run()`` is what ``redis-sessions demo`` calls: it binds the port first (so a busy port fails
before anything starts), uses the Redis URL it is given or else starts the embedded Valkey server,
serves until Ctrl-C or SIGTERM (or runs the scripted check and returns), and then stops all it
started. At start it prints the admin command that inspects the demo's sessions, with the Redis
URL spelled out: a bare ``redis-sessions ls`` would ask another Redis (127.0.0.1:6379).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .. import validate
from .._constants import DEFAULT_NAMESPACE
from ..embedded import EmbeddedServer
from ..manager import RedisSessions
from .app import make_app
from .check import run_check

__all__ = ["ThreadingWSGIServer", "make_server", "serving", "run", "inspect_command"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request, threads not waited for at exit."""

    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    quiet = False

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)


class _QuietHandler(_Handler):
    quiet = True


def make_server(host: str, port: int, app: Callable[..., Any] | None = None,
                quiet: bool = True) -> ThreadingWSGIServer:
    """A bound (not yet serving) server; ``set_app`` may come later. Port 0: a free one."""
    server = ThreadingWSGIServer((host, port), _QuietHandler if quiet else _Handler)
    if app is not None:
        server.set_app(app)
    return server


def base_url(server: ThreadingWSGIServer, host: str) -> str:
    shown = host if host not in ("", "0.0.0.0") else "127.0.0.1"
    return f"http://{shown}:{server.server_address[1]}/"


@contextlib.contextmanager
def serving(app: Callable[..., Any], host: str = DEFAULT_HOST, port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a background thread for the ``with`` block; yields the base URL."""
    server = make_server(host, port, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True, name="redis-sessions-demo")
    thread.start()
    try:
        yield base_url(server, host)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C does (only the main thread can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(*, host: str = DEFAULT_HOST, port: int | None = None, redis_url: str | None = None,
        app_name: str = "demo", namespace: str = "rs", check: bool = False,
        out: Callable[[str], None] | None = None) -> int:
    """Serve the demo until interrupted (returns 0), or with ``check`` walk through it once on a
    free port and return. Raises the package's errors, ``EmbeddedUnavailable`` and ``OSError``
    (a busy port) for the CLI to report."""
    say = out or (lambda line: print(line, flush=True))
    validate.app(app_name)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        server = make_server(host, (0 if check else DEFAULT_PORT) if port is None else port,
                             quiet=check)
        stack.callback(server.server_close)
        from_env = not redis_url and bool(os.environ.get("REDIS_URL"))
        url = redis_url or os.environ.get("REDIS_URL")
        if url:
            where = "Redis at " + _safe_url(url)
        else:
            embedded = EmbeddedServer().start()
            stack.callback(embedded.stop)
            url = embedded.url
            where = f"an embedded Valkey server on {url} (stopped on exit)"
        sessions = RedisSessions(url, namespace=namespace)
        stack.callback(sessions.close)
        sessions.ping()
        server.set_app(make_app(sessions, app_name))
        address = base_url(server, host)
        say(f"redis-sessions demo: sessions in {where}, namespace {namespace!r}")
        say("redis-sessions demo: inspect its sessions with: "
            + inspect_command(app_name, url, namespace, from_env=from_env))
        if check:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      daemon=True)
            thread.start()
            stack.callback(thread.join, 5)
            stack.callback(server.shutdown)
            run_check(address, app_name, say)
            say(f"demo check passed on {address}")
            return 0
        say(f"redis-sessions demo: serving on {address}  (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nredis-sessions demo: stopped", file=sys.stderr, flush=True)
        return 0


def inspect_command(app_name: str, url: str, namespace: str, *, from_env: bool = False) -> str:
    """The shell command that lists the demo's sessions: ``ls`` with the demo's Redis URL (and
    namespace when not the default). A URL with a password is not printed: taken from REDIS_URL
    it is referred to as ``"$REDIS_URL"``, else the password is shown as ``***``."""
    from ..cli import PROG

    if _has_password(url):
        where = '"$REDIS_URL"' if from_env else shlex.quote(_safe_url(url))
    else:
        where = shlex.quote(url)
    command = f"{PROG} ls {shlex.quote(app_name)} --redis-url {where}"
    if namespace != DEFAULT_NAMESPACE:
        command += f" --namespace {shlex.quote(namespace)}"
    return command


def _has_password(url: str) -> bool:
    from urllib.parse import urlsplit

    return bool(urlsplit(url).password)


def _safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    return url
