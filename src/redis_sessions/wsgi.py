"""The WSGI middleware: one request in, one response out, with a redis-sessions session.

``SessionMiddleware(app, app_name=...)`` opens the session of each request (see
``SessionHandler.open``), wraps ``start_response`` so that changes are saved and Set-Cookie (and
``Vary: Cookie`` when the session was used) is added before the headers leave, and, for a streamed
body, saves what changed while it iterated when the server closes it. A request whose app raised
saves nothing that was not saved explicitly. A logout that failed (Redis down) raises to the app;
if the app lets that error out before the response started, the middleware answers 503 with the
cookie expired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._constants import DEFAULT_TTL
from .devices.model import Device
from .errors import BackendError
from .session import COOKIE_EXPIRE, ENVIRON_KEY, Session, SessionHandler

if TYPE_CHECKING:
    from .manager import RedisSessions

__all__ = ["SessionMiddleware", "get_session"]

logger = logging.getLogger("redis_sessions")


def get_session(environ: dict[str, Any]) -> Session | None:
    """The session of a request (``environ["redis_sessions.session"]``); None when the request
    has no session handling (no app name for it, or outside the cookie's path)."""
    return environ.get(ENVIRON_KEY)


class SessionMiddleware(SessionHandler):
    """Sessions of Node's redis-sessions for a WSGI app; see ``SessionHandler`` for the options:
    ``app_name, sessions=None, redis=None, ttl=7200, cookie=None, secret_keys=None,
    trust_proxy=False, on_backend_error="anonymous", lazy=True, anonymous=True,
    anonymous_ttl=None, on_sign_in=None``."""

    def __init__(
        self,
        wsgi_app: Callable[..., Iterable[bytes]],
        *,
        app_name: str | Callable[[Mapping[str, Any]], str | None],
        sessions: RedisSessions | None = None,
        redis: Any = None,
        ttl: int = DEFAULT_TTL,
        cookie: Mapping[str, object] | None = None,
        secret_keys: list[str | bytes] | None = None,
        trust_proxy: bool | int = False,
        on_backend_error: str = "anonymous",
        lazy: bool = True,
        anonymous: bool = True,
        anonymous_ttl: int | None = None,
        on_sign_in: Callable[[Session, Device], object] | None = None,
    ) -> None:
        super().__init__(
            app_name=app_name, sessions=sessions, redis=redis, ttl=ttl, cookie=cookie,
            secret_keys=secret_keys, trust_proxy=trust_proxy, on_backend_error=on_backend_error,
            lazy=lazy, anonymous=anonymous, anonymous_ttl=anonymous_ttl, on_sign_in=on_sign_in,
        )
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = self.open(environ)
        if session is None:
            return self.wsgi_app(environ, start_response)
        response = _Response(self, session, start_response)
        try:
            result = self.wsgi_app(environ, response.start_response)
        except BackendError as exc:
            if response.started or not session.expiring:
                raise
            return response.unavailable(exc)
        if type(result) is list:  # the app is done: nothing can change during iteration
            if session.pending:
                response.finish_late()
            return result
        response.result = result
        return response


def _vary_cookie(headers: list[tuple[str, str]]) -> None:
    """Add ``Cookie`` to the response's Vary header (caches must not share what the session
    shaped), merging with a Vary the app set."""
    for i, (name, value) in enumerate(headers):
        if len(name) == 4 and name.lower() == "vary":
            fields = [f.strip().lower() for f in value.split(",")]
            if "cookie" not in fields and "*" not in fields:
                headers[i] = (name, f"{value}, Cookie")
            return
    headers.append(("Vary", "Cookie"))


class _Response:
    """One request's start_response wrapper, and the closing wrapper of a streamed body."""

    __slots__ = ("handler", "session", "start", "started", "result")

    def __init__(self, handler: SessionHandler, session: Session, start: Callable[..., Any]) -> None:
        self.handler = handler
        self.session = session
        self.start = start
        self.started = False
        self.result: Iterable[bytes] = ()

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        session = self.session
        if exc_info is not None:
            session.failed = True
        if session.pending:
            op = session.finish()  # may raise (on_backend_error="raise"): before headers leave
            if op:
                headers.append(("Set-Cookie", self.handler.cookie_header(session, op)))
        if session.accessed:
            _vary_cookie(headers)
        self.started = True
        return self.start(status, headers, exc_info)

    def unavailable(self, exc: BackendError) -> list[bytes]:
        """503 with the cookie expired: a logout the app let fail (Redis down) must not leave
        the browser holding its cookie."""
        logger.error("session of app %s: logout failed, answering 503: %s", self.session.app, exc)
        body = b"Service Unavailable: the session store could not be reached"
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                   ("Set-Cookie", self.handler.cookie_header(self.session, COOKIE_EXPIRE))]
        _vary_cookie(headers)
        self.started = True
        self.start("503 Service Unavailable", headers)
        return [body]

    def finish_late(self) -> None:
        """Save what changed after start_response; a cookie change can no longer be sent."""
        session = self.session
        if session.failed:
            return
        if not self.started:  # a broken app that never called start_response
            return
        if session.finish():
            logger.warning(
                "session of app %s: cookie changed after start_response; it was not sent",
                session.app,
            )

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.result
        except Exception:
            self.session.failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.finish_late()
