"""The ASGI middleware: redis-sessions for Starlette, FastAPI and any ASGI app.

``SessionMiddleware(app, app_name=..., ...)`` is pure ASGI (no framework import) and takes the
WSGI middleware's options. For http and websocket scopes it awaits the load (one round trip when
a cookie came, none otherwise) and puts the session in ``scope["session"]``, where Starlette's
and FastAPI's ``request.session`` find it; changes are saved when ``http.response.start`` (or
``websocket.accept``) passes, which then gets Set-Cookie and ``Vary: Cookie``. The session is an
``AsyncSession``: a mapping as usual, its Redis methods coroutines (``await session.upgrade(uid)``).
Configuration, cookies, signing and the session model are ``SessionHandler``'s and ``Session``'s.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._constants import DEFAULT_TTL
from .aio import AsyncRedisSessions
from .devices.model import Device
from .errors import BackendError
from .session import COOKIE_EXPIRE, COOKIE_KEEP, Session, SessionHandler, SessionOp
from .session import drive_async as _drive

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection
else:
    try:  # FastAPI reads get_session's annotation to inject the request
        from starlette.requests import HTTPConnection
    except ImportError:  # pragma: no cover - usable without Starlette
        HTTPConnection = Any

__all__ = ["SessionMiddleware", "AsyncSession", "get_session"]

logger = logging.getLogger("redis_sessions")

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AsyncSession(Session):
    """The session of one ASGI request: loaded before the app runs, so the mapping needs no
    I/O; the methods that talk to Redis are coroutines."""

    __slots__ = ()

    def _drive(self, op: SessionOp[T]) -> T:
        raise TypeError("this ASGI session's Redis methods are coroutines: use await (and "
                        "await session.load() before reading a lazy session)")

    async def upgrade(  # type: ignore[override]
        self, user_id: str | int, ttl: int | None = None, *, ip: str | None = None,
        user_agent: str | None = None,
    ) -> AsyncSession:
        """Log ``user_id`` in (``Session.upgrade``): a new token, sent in Set-Cookie; the
        handler's ``on_sign_in`` is called (awaited when it is a coroutine function)."""
        handler = self._handler
        device = await _drive(self, self._upgrade_op(user_id, ttl, ip, user_agent,
                                                     handler.notices_sign_in()))
        if device is not None:
            announced = handler.signed_in(self, device)
            if inspect.isawaitable(announced):
                try:
                    await announced
                except Exception:
                    logger.exception("on_sign_in failed for a sign-in of user %r in app %s",
                                     self.user_id, self.app)
        return self

    async def devices(self) -> list[Device]:  # type: ignore[override]
        """This user's signed-in sessions as ``Device``s (``Session.devices``)."""
        return await _drive(self, self._devices_op())

    async def destroydevice(self, handle: str) -> int:  # type: ignore[override]
        """End one of this user's sessions by its device handle (``Session.destroydevice``)."""
        return await _drive(self, self._destroydevice_op(handle))

    async def destroyothers(self) -> int:  # type: ignore[override]
        """End every session of this user but this one, atomically (``Session.destroyothers``)."""
        return await _drive(self, self._destroyothers_op())

    async def regenerate(self) -> AsyncSession:  # type: ignore[override]
        """A new token for the same session (``Session.regenerate``)."""
        await _drive(self, self._regenerate_op())
        return self

    async def destroy(self) -> int:  # type: ignore[override]
        """Kill this session and expire the cookie; returns how many sessions were killed."""
        return await _drive(self, self._destroy_op())

    async def destroyall(self) -> int:  # type: ignore[override]
        """Kill every session of this user id (all devices) and expire the cookie."""
        return await _drive(self, self._destroyall_op())

    async def soid(self) -> list[dict]:  # type: ignore[override]
        """The sessions of this user id (each with its ``token``); [] while anonymous."""
        return await _drive(self, self._soid_op())

    async def soapp(self, dt: int = 600) -> list[dict]:  # type: ignore[override]
        """The sessions of the app active in the last ``dt`` seconds."""
        return await _drive(self, self._soapp_op(dt))

    async def activity(self, dt: int = 600) -> int:  # type: ignore[override]
        """How many distinct user ids of the app were active in the last ``dt`` seconds."""
        return await _drive(self, self._activity_op(dt))

    async def save(self) -> None:  # type: ignore[override]
        """Write the changes now (``Session.save``); errors raise."""
        await _drive(self, self._save_op())

    async def load(self) -> None:
        """Load the session when it is not yet (one made by ``handler.session(token)``)."""
        if self._data is None:
            await _drive(self, self._load_op())

    async def reload(self) -> None:  # type: ignore[override]
        """Read the session again from Redis, dropping unsaved changes."""
        await _drive(self, self._reload_op())

    async def finish(self) -> int:  # type: ignore[override]
        """End of request: save per policy; COOKIE_KEEP, COOKIE_SET or COOKIE_EXPIRE."""
        return await _drive(self, self._finish_op())


def get_session(request: HTTPConnection) -> AsyncSession:
    """The session of a Starlette/FastAPI request or websocket, typed; as a FastAPI dependency:
    ``SessionDep = Annotated[AsyncSession, Depends(get_session)]``."""
    session = request.scope.get("session")
    if not isinstance(session, AsyncSession):
        raise RuntimeError("no redis-sessions session: is SessionMiddleware installed, and is "
                           "this path inside its app name and cookie path?")
    return session


def _environ(scope: Scope) -> dict[str, Any]:
    """What ``SessionHandler`` reads of a request, in WSGI's names (the scope as ``asgi.scope``)."""
    cookie = forwarded = agent = None
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            text = value.decode("latin-1")
            cookie = text if cookie is None else f"{cookie}; {text}"  # HTTP/2 splits it
        elif name == b"x-forwarded-for":
            text = value.decode("latin-1")
            forwarded = text if forwarded is None else f"{forwarded}, {text}"
        elif name == b"user-agent":
            agent = value.decode("latin-1")
    path = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and not path.startswith(root):  # servers differ on whether path holds root_path
        path = root + path
    client = scope.get("client")
    environ: dict[str, Any] = {"asgi.scope": scope, "PATH_INFO": path,
                               "REMOTE_ADDR": client[0] if client else None}
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    if agent is not None:
        environ["HTTP_USER_AGENT"] = agent
    return environ


def _vary_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    """Add ``Cookie`` to the response's Vary header, merging with a Vary the app set."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            fields = [f.strip().lower() for f in value.split(b",")]
            if b"cookie" not in fields and b"*" not in fields:
                headers[i] = (name, value + b", Cookie")
            return
    headers.append((b"vary", b"Cookie"))


class SessionMiddleware(SessionHandler):
    """redis-sessions for an ASGI app; the options are the WSGI middleware's (see
    ``SessionHandler``). ``sessions`` is an ``AsyncRedisSessions``; without it one is built from
    ``redis`` (a ``redis.asyncio.Redis``, a URL or None). A callable ``app_name`` receives the
    ASGI scope. The load is awaited before the app runs, unless ``lazy``: then the app awaits
    ``session.load()`` before reading (reading first raises TypeError), and writes made without
    reading are saved blind, in one round trip instead of two."""

    session_class = AsyncSession

    def __init__(
        self,
        app: ASGIApp,
        *,
        app_name: str | Callable[[Scope], str | None],
        sessions: AsyncRedisSessions | None = None,
        redis: Any = None,
        ttl: int = DEFAULT_TTL,
        cookie: Mapping[str, object] | None = None,
        secret_keys: list[str | bytes] | None = None,
        trust_proxy: bool | int = False,
        on_backend_error: str = "anonymous",
        anonymous: bool = True,
        anonymous_ttl: int | None = None,
        lazy: bool = False,
        on_sign_in: Callable[[Session, Device], object] | None = None,
    ) -> None:
        if sessions is None:
            sessions = AsyncRedisSessions(redis)
        elif redis is not None:
            raise TypeError("pass either sessions or redis, not both")
        elif not isinstance(sessions, AsyncRedisSessions):
            raise TypeError("the ASGI middleware needs an AsyncRedisSessions")
        if callable(app_name):
            of_scope = app_name
            app_name = lambda environ: of_scope(environ["asgi.scope"])  # noqa: E731
        super().__init__(
            app_name=app_name, sessions=sessions, ttl=ttl,  # type: ignore[arg-type]
            cookie=cookie, secret_keys=secret_keys, trust_proxy=trust_proxy,
            on_backend_error=on_backend_error, anonymous=anonymous, anonymous_ttl=anonymous_ttl,
            lazy=True,  # open() then does no I/O: __call__ awaits the load
            on_sign_in=on_sign_in,
        )
        self.app = app
        self.eager = not lazy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        session = self.open(_environ(scope))
        if session is None:
            await self.app(scope, receive, send)
            return
        if self.eager and session._data is None:
            await _drive(session, session._load_op())  # raises only with on_backend_error="raise"
        scope["session"] = session
        started = False

        async def send_with_cookie(message: Message) -> None:
            nonlocal started
            if not started and (message["type"] == "http.response.start"
                                or message["type"] == "websocket.accept"):
                message = await self._headers(session, message)
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        except BaseException as exc:
            session.failed = True  # what was not saved yet is dropped
            if isinstance(exc, BackendError) and not started and session.expiring \
                    and kind == "http":
                await self._unavailable(session, send, exc)
                return
            raise
        if started and session.pending:
            await self._finish_late(session)

    async def _headers(self, session: Session, message: Message) -> Message:
        """The response start with Set-Cookie (after saving) and Vary: Cookie as needed."""
        op = COOKIE_KEEP
        if session.pending:
            op = await _drive(session, session._finish_op())  # may raise: before headers leave
        if not op and not session.accessed:
            return message
        message = dict(message)
        headers = message["headers"] = list(message.get("headers") or ())
        if op:
            headers.append((b"set-cookie", self.cookie_header(session, op).encode("latin-1")))
        if session.accessed and message["type"] == "http.response.start":
            _vary_cookie(headers)
        return message

    async def _unavailable(self, session: Session, send: Send, exc: BackendError) -> None:
        """503 with the cookie expired: a logout the app let fail (Redis down) must not leave
        the browser holding its cookie."""
        logger.error("session of app %s: logout failed, answering 503: %s", session.app, exc)
        body = b"Service Unavailable: the session store could not be reached"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                   (b"set-cookie", self.cookie_header(session, COOKIE_EXPIRE).encode("latin-1")),
                   (b"vary", b"Cookie")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _finish_late(self, session: Session) -> None:
        """Save what changed after the response started (a streamed body, a websocket's life);
        a cookie change can no longer be sent."""
        if await _drive(session, session._finish_op()):
            logger.warning("session of app %s: cookie changed after the response started; it "
                           "was not sent", session.app)
