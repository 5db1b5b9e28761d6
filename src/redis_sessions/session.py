"""The per-request session object, and the handler that opens and finishes it.

``SessionHandler`` holds the configuration shared by every request (manager, cookie options, keys,
proxy trust, error policy) and mirrors Node's SessionHandler; the WSGI middleware is one, and the
Flask and Django adapters own one. ``Session`` is what user code touches: a mutable mapping of the
session data plus the methods of connect-redis-sessions' session object.

The hot path: ``open()`` resolves the app name, takes the token with one ``core.extract_token``
call and (eagerly unless ``lazy``) loads the session with one ``manager.get``; ``finish()`` asks
``core.diff`` only when the data was written to, and saves with one ``apply_changes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from math import isfinite
from typing import TYPE_CHECKING, Any

from . import core, validate
from ._constants import DEFAULT_TTL, MIN_TTL
from .cookies import CookieOptions, cookie_value
from .cookies import secret_keys as _secret_keys
from .errors import (
    BackendError,
    SessionTooLarge,
    ValidationError,
    forbidden_type,
    key_not_text,
    not_finite,
)

if TYPE_CHECKING:
    from .manager import RedisSessions

__all__ = ["Session", "SessionHandler", "ENVIRON_KEY", "UNKNOWN_IP"]

logger = logging.getLogger("redis_sessions")

#: where the session of a request lives in the WSGI environ
ENVIRON_KEY = "redis_sessions.session"
#: the ip stored for a client whose address is missing or not one Node accepts (over 39 chars)
UNKNOWN_IP = "unknown"

# what finish() tells the adapter to do with the cookie
COOKIE_KEEP = 0
COOKIE_SET = 1
COOKIE_EXPIRE = 2

_extract_token = core.extract_token
_snapshot = core.snapshot
_diff = core.diff
_SCALARS = (str, int, float)  # bool is an int


def _clamp_ttl(ttl: object, what: str) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        return validate.ttl(ttl)  # raises Node's error for anything that is not a number
    if ttl < MIN_TTL:
        logger.warning("%s ttl=%r is below %d seconds: using %d", what, ttl, MIN_TTL, MIN_TTL)
        return MIN_TTL
    return int(ttl)


class SessionHandler:
    """The configuration and the open/finish steps shared by the middleware and the adapters."""

    def __init__(
        self,
        *,
        app_name: str | Callable[[Mapping[str, Any]], str | None],
        sessions: RedisSessions | None = None,
        redis: Any = None,
        ttl: int = DEFAULT_TTL,
        cookie: Mapping[str, object] | None = None,
        secret_keys: list[str | bytes] | None = None,
        trust_proxy: bool | int = False,
        on_backend_error: str = "anonymous",
        lazy: bool = False,
    ) -> None:
        if callable(app_name):
            self._app_name: str | None = None
            self._app_name_of: Callable[[Mapping[str, Any]], str | None] | None = app_name
        else:
            self._app_name = validate.app(app_name)
            self._app_name_of = None
        if sessions is None:
            from .manager import RedisSessions

            sessions = RedisSessions(redis)
        elif redis is not None:
            raise TypeError("pass either sessions or redis, not both")
        self.manager = sessions
        self.ttl = _clamp_ttl(ttl, "SessionMiddleware")
        self.cookie = CookieOptions(cookie)
        self._keys = _secret_keys(secret_keys)
        if trust_proxy is True:
            trust_proxy = 1
        if not isinstance(trust_proxy, int) or trust_proxy < 0:
            raise ValueError("trust_proxy must be False, True or a number of proxy hops")
        self.trust_proxy = int(trust_proxy)
        if on_backend_error not in ("anonymous", "raise"):
            raise ValueError("on_backend_error must be 'anonymous' or 'raise'")
        self.on_backend_error = on_backend_error
        self.raise_errors = on_backend_error == "raise"
        self.lazy = bool(lazy)
        self.backend_down = False  # set while Redis is unreachable, to log an outage once

    # -- per request ---------------------------------------------------------------------------

    def open(self, environ: dict[str, Any]) -> Session | None:
        """The session of a request (also put in ``environ``), or None when it has none: no app
        name for it, or its path is outside the cookie's path."""
        app = self._app_name
        if app is None:
            app = self._app_name_of(environ)  # type: ignore[misc]
            if not app or not validate.is_app(app):  # e.g. taken from a client's URL path
                return None
        if self.cookie.path_prefix is not None and not self.cookie.in_path(environ):
            return None
        header = environ.get("HTTP_COOKIE")
        token = None
        if header is not None:
            prefix = self.cookie.name_prefix
            token = _extract_token(header, prefix + app if prefix else app, self._keys)
        session = Session(self, environ, app, token)
        if session._token is not None and not self.lazy:
            session._load()
        environ[ENVIRON_KEY] = session
        return session

    def client_ip(self, environ: Mapping[str, Any]) -> str:
        """REMOTE_ADDR, or with trust_proxy=N the Nth address from the right of X-Forwarded-For
        (REMOTE_ADDR when the header has fewer); ``UNKNOWN_IP`` when missing or over 39 chars."""
        ip = None
        hops = self.trust_proxy
        if hops:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR")
            if forwarded:
                parts = forwarded.split(",")
                if len(parts) >= hops:
                    ip = parts[-hops].strip(" \t")
        if not ip:
            ip = environ.get("REMOTE_ADDR")
        try:
            return validate.ip(ip)
        except ValidationError:
            return UNKNOWN_IP

    def cookie_header(self, session: Session, op: int) -> str:
        """The Set-Cookie value for what ``finish()`` returned (COOKIE_SET or COOKIE_EXPIRE)."""
        if op == COOKIE_SET and session._token is not None:
            return self.cookie.set_header(
                self.cookie.name(session.app), cookie_value(session._token, self._keys)
            )
        return self.cookie.expire_header(self.cookie.name(session.app))

    # -- backend health ------------------------------------------------------------------------

    def _outage(self, exc: BaseException) -> None:
        if not self.backend_down:
            self.backend_down = True
            logger.warning("Redis unavailable, serving anonymous sessions: %s", exc)

    def _recovered(self) -> None:
        if self.backend_down:
            self.backend_down = False
            logger.warning("Redis reachable again: sessions restored")


class Session(MutableMapping):
    """The session of one request: its data as a mapping, plus connect-redis-sessions' methods.

    Values are str, int, float or bool; assigning None deletes the key. ``id`` is the token
    (None while anonymous), ``meta`` the session's ``{id, r, w, ttl, idle, ip}``, ``user_id`` the
    user id. Changes are saved when the response starts (or with ``save()``); data put in an
    anonymous session is kept only if ``upgrade()`` makes it a real one in the same request.
    """

    __slots__ = ("_handler", "_environ", "app", "_token", "_meta", "_data", "_snap", "_cookie",
                 "failed", "accessed", "_backend_error")

    def __init__(self, handler: SessionHandler, environ: Mapping[str, Any], app: str,
                 token: str | None) -> None:
        self._handler = handler
        self._environ = environ
        self.app = app
        self._token = token
        self._meta: dict | None = None
        # None until loaded (a token with lazy=True), then the data
        self._data: dict | None = None if token is not None else {}
        self._snap: dict | None = None  # the data before the first write since the last save
        self._cookie = COOKIE_KEEP
        #: set by the adapters when the app raised: unsaved changes are then dropped
        self.failed = False
        #: set by Flask when its request context hands the session out (unused here)
        self.accessed = False
        # the error Redis gave this request: later calls fail at once instead of waiting again
        self._backend_error: BackendError | None = None

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> dict:
        handler = self._handler
        data: dict = {}
        token = self._token
        if token is None:  # anonymous: nothing to load
            self._data = data
            return data
        try:
            found = handler.manager.get(self.app, token)
        except BackendError as exc:
            self._data = data
            self._token = None  # anonymous for this request; the cookie is left alone
            self._backend_error = exc
            if handler.raise_errors:
                raise
            handler._outage(exc)
            return data
        if handler.backend_down:
            handler._recovered()
        if found is None:  # a stale cookie: anonymous, and the cookie is expired
            self._token = None
            self._cookie = COOKIE_EXPIRE
        else:
            stored = found.pop("d", None)
            if stored:
                data = stored
            self._meta = found
        self._data = data
        return data

    def _loaded(self) -> dict:
        data = self._data
        return self._load() if data is None else data

    # -- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        data = self._data
        if data is None:
            data = self._load()
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        data = self._data
        if data is None:
            data = self._load()
        return data.get(key, default)

    def __contains__(self, key: object) -> bool:
        data = self._data
        if data is None:
            data = self._load()
        return key in data

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def _writable(self) -> dict:
        data = self._data
        if data is None:
            data = self._load()
        if self._snap is None:
            self._snap = _snapshot(data)
            # the loaded dict may be shared (the manager's local cache): write to a copy
            self._data = data = dict(data)
        return data

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            data = self._loaded()
            if key in data:
                del self._writable()[key]
            return
        if type(key) is not str:
            raise key_not_text(key)
        if not isinstance(value, _SCALARS):
            raise forbidden_type(key)
        if type(value) is float and not isfinite(value):
            raise not_finite(key)
        self._writable()[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self._loaded():
            raise KeyError(key)
        del self._writable()[key]

    def clear(self) -> None:
        if self._loaded():
            self._writable().clear()

    def __repr__(self) -> str:
        if self._data is None:
            return f"<Session {self.app} (not loaded)>"
        who = f"user {self._meta['id']!r}" if self._meta else "anonymous"
        return f"<Session {self.app} {who} {self._data!r}>"

    # -- properties ----------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The token (what the cookie carries); None while anonymous."""
        if self._data is None:
            self._load()
        return self._token

    @property
    def meta(self) -> dict | None:
        """``{id, r, w, ttl, idle, ip}`` (+ ``no_resave``) as last read or written; None while
        anonymous. Treat it as read-only."""
        if self._data is None:
            self._load()
        return self._meta

    @property
    def user_id(self) -> str | None:
        """The user id of the session (``meta["id"]``); None while anonymous."""
        meta = self.meta
        return None if meta is None else meta["id"]

    def _backend(self) -> RedisSessions:
        """The manager, unless Redis already failed in this request: then that error, at once
        (a request during an outage waits for one timeout, not one per call)."""
        if self._backend_error is not None:
            raise self._backend_error
        return self._handler.manager

    @property
    def manager(self) -> RedisSessions:
        """The RedisSessions behind this session (Node's getRedisSessionsModule())."""
        return self._handler.manager

    @property
    def modified(self) -> bool:
        """Whether the data was written to since it was loaded or last saved."""
        return self._snap is not None

    # -- the seed's methods --------------------------------------------------------------------

    def upgrade(self, user_id: str | int, ttl: int | None = None) -> Session:
        """Log ``user_id`` in: a new session and token (never the incoming one), sent in
        Set-Cookie. The data of an anonymous session (or of one of the same user) moves into the
        new session; a session of another user is replaced and killed with its data."""
        data = self._loaded()
        handler = self._handler
        manager = self._backend()
        user_id = validate.user_id(user_id)
        ttl = handler.ttl if ttl is None else _clamp_ttl(ttl, "upgrade()")
        ip = handler.client_ip(self._environ)
        old = self._token
        if old is not None and self._meta is not None and self._meta["id"] != user_id:
            data = {}
        data = {k: v for k, v in data.items() if v is not None}
        token = manager.create(self.app, user_id, ip, ttl, d=data or None)
        if old is not None:
            manager.kill(self.app, old)
        self._become(token, {"id": user_id, "r": 1, "w": 1, "ttl": ttl, "idle": 0, "ip": ip}, data)
        return self

    def regenerate(self) -> Session:
        """A new token for the same user and data (the old one is killed); anonymous: no-op."""
        data = self._loaded()
        meta = self._meta
        old = self._token
        if old is None or meta is None:
            return self
        handler = self._handler
        data = dict(data)
        ip = handler.client_ip(self._environ)
        no_resave = bool(meta.get("no_resave"))
        manager = self._backend()
        token = manager.create(self.app, meta["id"], ip, meta["ttl"], d=data or None,
                                       no_resave=no_resave)
        manager.kill(self.app, old)
        new_meta = {"id": meta["id"], "r": 1, "w": 1, "ttl": meta["ttl"], "idle": 0, "ip": ip}
        if no_resave:
            new_meta["no_resave"] = True
        self._become(token, new_meta, data)
        return self

    def _become(self, token: str, meta: dict, data: dict) -> None:
        self._token = token
        self._meta = meta
        self._data = data
        self._snap = None
        self._cookie = COOKIE_SET

    def _forget(self) -> None:
        self._token = None
        self._meta = None
        self._data = {}
        self._snap = None
        self._cookie = COOKIE_EXPIRE

    def destroy(self) -> int:
        """Kill this session and expire the cookie; returns how many sessions were killed."""
        self._loaded()
        if self._token is None:
            return 0
        killed = self._backend().kill(self.app, self._token)
        self._forget()
        return killed

    def destroyall(self) -> int:
        """Kill every session of this user id (all devices) and expire the cookie."""
        self._loaded()
        if self._meta is None:
            return 0
        killed = self._backend().killsoid(self.app, self._meta["id"])
        self._forget()
        return killed

    def soid(self) -> list[dict]:
        """The sessions of this user id (each with its ``token``); [] while anonymous."""
        self._loaded()
        if self._meta is None:
            return []
        return self._backend().soid(self.app, self._meta["id"])

    def soapp(self, dt: int = 600) -> list[dict]:
        """The sessions of the app active in the last ``dt`` seconds."""
        return self._backend().soapp(self.app, dt)

    def activity(self, dt: int = 600) -> int:
        """How many distinct user ids of the app were active in the last ``dt`` seconds."""
        return self._backend().activity(self.app, dt)

    def save(self) -> None:
        """Write the changes now (one round trip, none when nothing changed). Errors raise.
        An anonymous session is not stored (as in Node): ``upgrade()`` it first."""
        if self._snap is None or self._token is None:
            return
        changes = _diff(self._snap, self._data)  # type: ignore[arg-type]
        if changes:
            found = self._backend().apply_changes(self.app, self._token, changes)
            if found is None:  # the session is gone (killed elsewhere, or expired)
                self._forget()
                return
            found.pop("d", None)
            self._meta = found
            if self._handler.cookie.max_age is not None and self._cookie == COOKIE_KEEP:
                self._cookie = COOKIE_SET
        self._snap = None

    def reload(self) -> None:
        """Read the session again from Redis, dropping unsaved changes."""
        if self._token is None:
            return
        self._snap = None
        self._load()

    # -- end of request ------------------------------------------------------------------------

    def finish(self) -> int:
        """Save pending changes (unless ``failed``) per the error policy, and return what to do
        with the cookie: COOKIE_KEEP, COOKIE_SET or COOKIE_EXPIRE (then reset)."""
        if self._snap is not None:
            if self.failed or self._token is None:
                self._snap = None
            else:
                handler = self._handler
                try:
                    self.save()
                except (BackendError, SessionTooLarge) as exc:
                    self._snap = None
                    if handler.raise_errors:
                        raise
                    if isinstance(exc, BackendError):
                        handler._outage(exc)
                    user = self._meta["id"] if self._meta else None
                    logger.error("could not save the session of user %r in app %s: %s", user,
                                 self.app, exc)
                else:
                    if handler.backend_down:
                        handler._recovered()
        op = self._cookie
        self._cookie = COOKIE_KEEP
        return op

