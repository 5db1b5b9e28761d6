"""The per-request session object, and the handler that opens and finishes it.

``SessionHandler`` holds the configuration shared by every request (manager, cookie options, keys,
proxy trust, error policy, anonymous sessions, value codec) and mirrors Node's SessionHandler; the
WSGI middleware is one, and the Flask and Django adapters own one. ``Session`` is the one session
model every adapter wraps: a mutable mapping of JSON values plus the methods of
connect-redis-sessions' session object.

A session is anonymous (stored from its first write, invisible to user indexes and to Node) or a
user's (Node's layout); ``upgrade()`` turns the one into the other inside Redis, atomically, under
a new token. The hot path: ``open()`` resolves the app name and takes the token with one
``core.extract_token`` call; the first access loads the session with one ``manager.load`` (at once
with ``lazy=False``); ``finish()`` diffs the data against a snapshot only when it was written to
or a container was handed out, and saves with one round trip (writes made before any read are
sent blind, in the only round trip of the request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator, Mapping, MutableMapping
from math import inf
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import core, validate
from ._constants import DEFAULT_TTL, MIN_TTL
from .cookies import CookieOptions, cookie_value
from .cookies import secret_keys as _secret_keys
from .devices.model import Device, from_records
from .errors import (
    BackendError,
    BackendUnsupported,
    SessionError,
    SessionRotated,
    SessionTooLarge,
    ValidationError,
    key_not_text,
)
from .operations import DEVICE_ENDED_SELF

if TYPE_CHECKING:
    from .aio import AsyncRedisSessions
    from .manager import RedisSessions

__all__ = ["Session", "SessionHandler", "Codec", "ENVIRON_KEY", "UNKNOWN_IP", "drive_async"]

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
_check_value = core.check_value
# values that cannot change in place: handing one out needs no snapshot
_IMMUTABLE = frozenset((str, int, float, bool, type(None)))
_ROTATED_MESSAGE = ("not saved: a concurrent request replaced this session's token (log-in); "
                    "the browser holds the new cookie")
# the manager calls of a logout: tried even after this request's load failed (the kill functions
# run when Redis is out of memory, where the load did not), never skipped as the others are
_LOGOUTS = frozenset(("kill", "killsoid"))

T = TypeVar("T")
#: what a session operation asks of the manager: (method name, positional, keyword arguments);
#: the blocking driver calls ``RedisSessions``, an async one awaits the same method names
Request = tuple[str, tuple[Any, ...], dict[str, Any]]
SessionOp = Generator[Request, Any, T]


class Codec(Protocol):
    """Turns one top-level session value into a JSON value and back (Flask's tagged JSON)."""

    def dump(self, value: Any) -> Any: ...

    def load(self, value: Any) -> Any: ...


def _clamp_ttl(ttl: object, what: str) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != ttl or ttl == inf:
        return validate.ttl(ttl)  # raises Node's error for anything that is not a number
    if ttl < MIN_TTL:
        logger.warning("%s ttl=%r is below %d seconds: using %d", what, ttl, MIN_TTL, MIN_TTL)
        return MIN_TTL
    return validate.ttl(int(ttl))


class SessionHandler:
    """The configuration and the open/finish steps shared by the middleware and the adapters.

    ``anonymous`` (default True) stores a visitor's session from its first write; False keeps
    Node's model (data is kept only once ``upgrade()`` made the session a user's).
    ``anonymous_ttl`` (default ``ttl``): seconds an anonymous session lives after its last use.
    ``codec`` converts each top-level value to JSON and back (None: values are JSON already).
    ``on_sign_in(session, device)`` is called after each sign-in (``upgrade()`` and the
    framework logins that call it) with the session and its ``Device``, e.g. to mail "new
    sign-in from Chrome on Windows"; its errors are logged, never raised (the sign-in is done).
    """

    #: the Session class built for each request (adapters may use a subclass)
    session_class: type[Session]

    def __init__(
        self,
        *,
        app_name: str | Callable[[Mapping[str, Any]], str | None],
        sessions: RedisSessions | AsyncRedisSessions | None = None,
        redis: Any = None,
        ttl: int = DEFAULT_TTL,
        cookie: Mapping[str, object] | None = None,
        secret_keys: list[str | bytes] | None = None,
        trust_proxy: bool | int = False,
        on_backend_error: str = "anonymous",
        lazy: bool = True,
        anonymous: bool = True,
        anonymous_ttl: int | None = None,
        codec: Codec | None = None,
        on_sign_in: Callable[[Session, Device], object] | None = None,
    ) -> None:
        if on_sign_in is not None and not callable(on_sign_in):
            raise TypeError("on_sign_in must be a callable(session, device)")
        self.on_sign_in = on_sign_in
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
        self.manager: RedisSessions | AsyncRedisSessions = sessions
        self.ttl = _clamp_ttl(ttl, "SessionMiddleware")
        self.cookie = CookieOptions(cookie)
        self._keys = _secret_keys(secret_keys)
        # tried first: the key that signs; the older ones only when it fails (a cookie to sign
        # again with the current key)
        self._signing_key = None if self._keys is None else self._keys[:1]
        self._older_keys = None if self._keys is None or len(self._keys) < 2 else self._keys[1:]
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
        self.anonymous = bool(anonymous)
        self.anonymous_ttl = (
            self.ttl if anonymous_ttl is None else _clamp_ttl(anonymous_ttl, "anonymous_ttl")
        )
        self.codec = codec
        self.backend_down = False  # set while Redis is unreachable, to log an outage once
        self._unsupported_logged = False  # a Redis that cannot run the library: logged once

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
        resign = False
        if header is not None:
            prefix = self.cookie.name_prefix
            name = prefix + app if prefix else app
            token = _extract_token(header, name, self._signing_key)
            if token is None and self._older_keys is not None:
                # verified by an older key: signed again with the current one once it is used
                token = _extract_token(header, name, self._older_keys)
                resign = token is not None
        session = self.session_class(self, environ, app, token)
        session._resign = resign
        if token is not None and not self.lazy:
            session._drive(session._load_op())  # loaded, not yet used (no Vary for that)
        environ[ENVIRON_KEY] = session
        return session

    def session(self, token: object = None, environ: Mapping[str, Any] | None = None) -> Session:
        """A session outside the cookie handling (Django's ``SessionStore(session_key)``): the
        raw token, unsigned; anything that is not a token gives a fresh session. Loaded lazily;
        needs a fixed app name."""
        if self._app_name is None:
            raise TypeError("a session without a request needs a fixed app_name")
        valid = token if core.is_token(token) else None
        return self.session_class(self, environ or {}, self._app_name, valid)  # type: ignore[arg-type]

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

    def cookie_value(self, session: Session) -> str:
        """What the cookie carries for ``session``: its token, signed when keys are set."""
        if session._token is None:
            raise ValueError("the session has no token")
        return cookie_value(session._token, self._keys)

    def cookie_header(self, session: Session, op: int) -> str:
        """The Set-Cookie value for what ``finish()`` returned (COOKIE_SET or COOKIE_EXPIRE)."""
        if op == COOKIE_SET and session._token is not None:
            return self.cookie.set_header(self.cookie.name(session.app), self.cookie_value(session))
        return self.cookie.expire_header(self.cookie.name(session.app))

    # -- sign-in notice ------------------------------------------------------------------------

    def notices_sign_in(self) -> bool:
        """Whether a sign-in is announced (someone listens): then the session's ``Device`` is
        read right after it (one more round trip)."""
        return self.on_sign_in is not None

    def signed_in(self, session: Session, device: Device) -> object:
        """Announce a sign-in: call ``on_sign_in``; what it returns (an awaitable, from an async
        callback) is returned. Its errors are logged: the sign-in happened already."""
        if self.on_sign_in is None:
            return None
        try:
            return self.on_sign_in(session, device)
        except Exception:
            logger.exception("on_sign_in failed for a sign-in of user %r in app %s",
                             session.user_id, session.app)
            return None

    # -- backend health ------------------------------------------------------------------------

    def _outage(self, exc: BaseException) -> None:
        if isinstance(exc, BackendUnsupported):  # Redis answers, but cannot run the library
            if not self._unsupported_logged:
                self._unsupported_logged = True
                logger.error("Redis cannot run redis-sessions, serving anonymous sessions: %s",
                             exc)
            return
        if not self.backend_down:
            self.backend_down = True
            logger.warning("Redis unavailable, serving anonymous sessions: %s", exc)

    def _recovered(self) -> None:
        if self.backend_down:
            self.backend_down = False
            logger.warning("Redis reachable again: sessions restored")


class Session(MutableMapping):
    """The session of one request: its data as a mapping of JSON values, plus
    connect-redis-sessions' methods.

    Values are JSON values (dicts with str keys, lists, tuples - back as lists -, str, int,
    float, bool, None inside containers); assigning None deletes a key; what cannot be stored is
    refused at assignment with ``ValidationError``. In-place changes to containers are saved too.
    ``id`` is the token (None while nothing is stored), ``user_id`` the user id (None while
    anonymous), ``meta`` the user session's ``{id, r, w, ttl, idle, ip}``. Changes are saved when
    the response starts (or with ``save()``).
    """

    __slots__ = ("_handler", "_environ", "app", "_token", "_meta", "_data", "_snap", "_cookie",
                 "failed", "accessed", "_backend_error", "_new", "_force", "_new_ttl",
                 "_rotated", "_anonymous_ttl", "_blind", "_lost_token", "_resign")

    def __init__(self, handler: SessionHandler, environ: Mapping[str, Any], app: str,
                 token: str | None) -> None:
        self._handler = handler
        self._environ = environ
        self.app = app
        self._token = token
        self._meta: dict | None = None
        # None until loaded (a token with lazy=True), then the data
        self._data: dict | None = None if token is not None else {}
        # the stored (JSON) form of the data as loaded or last saved, taken before the first
        # write or the first container handed out; None while neither happened
        self._snap: dict | None = None
        self._cookie = COOKIE_KEEP
        #: set by the adapters when the app raised: unsaved changes are then dropped
        self.failed = False
        #: True once the data was read or written (adapters send ``Vary: Cookie`` then)
        self.accessed = False
        # the error Redis gave this request: later calls fail at once instead of waiting again
        self._backend_error: BackendError | None = None
        self._new = token is None
        self._force = False  # modified = True: save everything, send the cookie again
        self._new_ttl: int | None = None
        self._rotated = False  # the cookie's token was rotated by a concurrent request
        self._anonymous_ttl: int | None = None  # a stored anonymous session's own ttl
        # writes made before the session was loaded (lazy): sent blind if nothing reads it
        self._blind: dict | None = None
        # the cookie's token when its load failed (a Redis error): a logout still ends it
        self._lost_token: str | None = None
        # the cookie was verified by an older secret key: sent again, signed by the current one,
        # once the session is found
        self._resign = False

    # -- loading -------------------------------------------------------------------------------

    def _drive(self, op: SessionOp[T]) -> T:
        """Run a session operation against the blocking manager: each request it yields is a
        manager call; an error is thrown back into it. After a Redis failure in this request,
        later calls fail at once with that error (an outage costs one timeout, not one per
        call)."""
        manager = self._handler.manager
        try:
            name, args, kwargs = next(op)
            while True:
                try:
                    self._check_backend(name)
                    result = getattr(manager, name)(*args, **kwargs)
                except SessionError as exc:
                    name, args, kwargs = op.throw(exc)
                else:
                    name, args, kwargs = op.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _check_backend(self, name: str) -> None:
        """After a Redis failure in this request, raise it again rather than wait once more;
        a logout is still tried."""
        if self._backend_error is not None and name not in _LOGOUTS:
            raise self._backend_error

    def _load(self) -> dict:
        """Load now, for a use of the session (a read, a property)."""
        self.accessed = True
        return self._drive(self._load_op())

    def _ensure_loaded(self) -> SessionOp[dict]:
        self.accessed = True  # the session is used: the response depends on the cookie
        data = self._data
        if data is None:
            data = yield from self._load_op()
        return data

    def _load_op(self) -> SessionOp[dict]:
        handler = self._handler
        data: dict = {}
        token = self._token
        if token is None:  # nothing stored: nothing to load
            self._data = data
            return data
        try:
            found = yield ("load", (self.app, token, handler.anonymous), {})
        except BackendError as exc:
            self._data = data
            self._token = None  # anonymous for this request; the cookie is left alone
            self._lost_token = token
            self._new = True
            self._backend_error = exc
            self._apply_blind(data)  # so the save of those writes fails visibly
            if handler.raise_errors:
                raise
            handler._outage(exc)
            return data
        if handler.backend_down:
            handler._recovered()
        if found is None:  # a stale cookie: a fresh session, and the cookie is expired
            self._token = None
            self._new = True
            self._cookie = COOKIE_EXPIRE
        elif "rotated" in found:
            # upgrade/regenerate replaced this token moments ago: the browser holds the new
            # cookie (or is receiving it), so keep it, and refuse writes (see save())
            self._token = None
            self._new = True
            self._rotated = True
        else:
            stored = found.pop("d", None)
            if stored:
                data = self._from_stored(stored)
            if found["id"] is None:
                self._anonymous_ttl = found["ttl"]
            else:
                self._meta = found
            if self._resign and self._cookie == COOKIE_KEEP:
                self._cookie = COOKIE_SET
        self._data = data
        self._apply_blind(data)
        return data

    def _apply_blind(self, data: dict) -> None:
        """Writes made before loading go on top of the loaded data, as changes."""
        if self._blind is not None:
            blind, self._blind = self._blind, None
            self._watch()
            for key, value in blind.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value

    def _loaded(self) -> dict:
        data = self._data
        return self._load() if data is None else data

    def _from_stored(self, stored: dict) -> dict:
        """Stored (JSON) data as the app sees it: the values through the codec, if any."""
        codec = self._handler.codec
        return stored if codec is None else {k: codec.load(v) for k, v in stored.items()}

    def _drop_unsaved(self) -> None:
        """Forget what was not saved: the snapshot, blind writes, a forced save, a new ttl."""
        self._snap = None
        self._force = False
        self._new_ttl = None
        self._blind = None

    def _stored_form(self) -> dict:
        """The data as it is stored: the values through the codec, if any."""
        data = self._loaded()
        codec = self._handler.codec
        return data if codec is None else {k: codec.dump(v) for k, v in data.items()}

    def _watch(self) -> None:
        """Take the snapshot that later changes are diffed against (once per save)."""
        if self._snap is None:
            self._snap = _snapshot(self._stored_form())

    # -- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        data = self._data
        if data is None:
            data = self._load()
        self.accessed = True
        value = data[key]
        if self._snap is None and type(value) not in _IMMUTABLE:
            self._watch()  # the caller may change it in place
        return value

    def get(self, key: str, default: Any = None) -> Any:
        data = self._data
        if data is None:
            data = self._load()
        self.accessed = True
        value = data.get(key, default)
        if self._snap is None and type(value) not in _IMMUTABLE and key in data:
            self._watch()
        return value

    def __contains__(self, key: object) -> bool:
        data = self._data
        if data is None:
            data = self._load()
        self.accessed = True
        return key in data

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(self._loaded())

    def __len__(self) -> int:
        self.accessed = True
        return len(self._loaded())

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            if self._data is None and type(key) is str:  # a blind delete
                if self._blind is None:
                    self._blind = {}
                self._blind[key] = None
                self.accessed = True
            elif key in self._loaded():
                del self[key]
            return
        if type(key) is not str:
            if not isinstance(key, str):
                raise key_not_text(key)
            key = str.__str__(key)  # a str subclass (an Enum member, Markup) as plain text
        handler = self._handler
        codec = handler.codec
        stored = value if codec is None else codec.dump(value)
        _check_value(key, stored)
        if type(stored) is str and len(stored) > handler.manager.limits[0]:
            raise SessionTooLarge(f"d.{key} alone would take more than {len(stored)} bytes; "
                                  f"the limit is {handler.manager.limits[0]}")
        self.accessed = True
        if self._data is None:  # not loaded (lazy): a blind write, unless something reads
            if self._blind is None:
                self._blind = {}
            self._blind[key] = value
            return
        self._watch()
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        data = self._loaded()
        self.accessed = True
        if key not in data:
            raise KeyError(key)
        self._watch()
        del data[key]

    def clear(self) -> None:
        data = self._loaded()
        self.accessed = True
        if data:
            self._watch()
            data.clear()

    def __repr__(self) -> str:
        if self._data is None:
            return f"<Session {self.app} (not loaded)>"
        who = f"user {self._meta['id']!r}" if self._meta else "anonymous"
        return f"<Session {self.app} {who} {self._data!r}>"

    # -- properties ----------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The token (what the cookie carries); None while nothing is stored."""
        if self._data is None:
            self._load()
        return self._token

    @property
    def loaded(self) -> bool:
        """Whether the data was read from Redis (or known without: nothing stored) in this
        request; False for a lazy session not used yet, or only written to (blind)."""
        return self._data is not None

    @property
    def token(self) -> str | None:
        """The token as known now, without loading (a lazy session's cookie is not checked)."""
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

    @property
    def new(self) -> bool:
        """True when the request brought no live session (no cookie, or a stale one)."""
        if self._data is None:
            self._load()
        return self._new

    @property
    def modified(self) -> bool:
        """Whether there is something to save: data changed (in place included) since it was
        loaded or saved, or ``modified = True`` was set (save all, send the cookie again)."""
        if self._force or self._new_ttl is not None or self._blind:
            return True
        return self._snap is not None and bool(_diff(self._snap, self._stored_form()))

    @modified.setter
    def modified(self, value: bool) -> None:
        self._loaded()
        self._force = bool(value)

    @property
    def ttl(self) -> int:
        """The session's ttl in seconds (a user session's Node ttl, else the anonymous ttl).
        Set it (>= 10) to store a new one, counted from now, with the next save."""
        if self._new_ttl is not None:
            return self._new_ttl
        meta = self.meta
        if meta is not None:
            return meta["ttl"]
        return self._anonymous_ttl or self._handler.anonymous_ttl

    @ttl.setter
    def ttl(self, value: int) -> None:
        self._new_ttl = validate.ttl(value)

    @property
    def rotated(self) -> bool:
        """True when the cookie's token was replaced moments ago by a concurrent request's
        upgrade/regenerate: the session is empty, the cookie is kept, writes are refused."""
        if self._data is None:
            self._load()
        return self._rotated

    @property
    def manager(self) -> RedisSessions | AsyncRedisSessions:
        """The RedisSessions behind this session (Node's getRedisSessionsModule())."""
        return self._handler.manager

    # -- the seed's methods --------------------------------------------------------------------

    def _pending(self) -> list[bytes]:
        """The encoded changes not saved yet (everything after ``modified = True``)."""
        view = self._stored_form()
        snap = self._snap
        if not self._force:
            return [] if snap is None else _diff(snap, view)
        changes = core.encode_changes(view)
        if snap:
            for key, value in snap.items():
                if value is not None and view.get(key) is None:
                    changes += core.encode_changes({key: None})
        return changes

    def upgrade(self, user_id: str | int, ttl: int | None = None, *, ip: str | None = None,
                user_agent: str | None = None) -> Session:
        """Log ``user_id`` in: one atomic script moves the stored data of this session (when
        anonymous, or the same user's) plus this request's unsaved changes into a new user
        session under a new token (never the incoming one), sent in Set-Cookie; the old session
        is deleted. A session of another user is killed with its data. The sign-in records its
        device (``user_agent``, default the request's User-Agent header) and is announced to
        the handler's ``on_sign_in``."""
        handler = self._handler
        device = self._drive(self._upgrade_op(user_id, ttl, ip, user_agent,
                                              handler.notices_sign_in()))
        if device is not None:
            handler.signed_in(self, device)
        return self

    def _upgrade_op(self, user_id: str | int, ttl: int | None, ip: str | None,
                    user_agent: str | None = None, notice: bool = False
                    ) -> SessionOp[Device | None]:
        """The sign-in; with ``notice``, the new session's Device read afterwards (None when
        that read fails: the sign-in stands and the failure is logged)."""
        yield from self._ensure_loaded()
        handler = self._handler
        user_id = validate.user_id(user_id)
        ttl = handler.ttl if ttl is None else _clamp_ttl(ttl, "upgrade()")
        address = handler.client_ip(self._environ) if ip is None else validate.ip(ip)
        agent = validate.user_agent(self._environ.get("HTTP_USER_AGENT") if user_agent is None
                                    else user_agent)
        other_user = self._meta is not None and self._meta["id"] != user_id
        changes = [] if other_user else self._pending()
        found = yield ("upgrade", (self.app, self._token, user_id, address, ttl, changes),
                       {"user_agent": agent})
        self._become(found)
        if not notice:
            return None
        try:
            return (yield from self._current_device_op())
        except BackendError as exc:
            logger.warning("the sign-in of user %r in app %s is not announced: %s", user_id,
                           self.app, exc)
            return None

    def regenerate(self) -> Session:
        """A new token for the same session (kind, user, data, expiry; copied inside Redis,
        with this request's unsaved changes); the old token is deleted. No-op while nothing is
        stored."""
        return self._drive(self._regenerate_op())

    def _regenerate_op(self) -> SessionOp[Session]:
        yield from self._ensure_loaded()
        if self._token is None:
            return self
        address = self._handler.client_ip(self._environ)
        found = yield ("regenerate", (self.app, self._token, address, self._pending()), {})
        if found is None:  # it ended meanwhile
            self._forget()
        else:
            self._become(found)
        return self

    def _become(self, found: dict) -> None:
        """Adopt the session a rotation (upgrade/regenerate) made."""
        self._token = found.pop("token")
        self._data = self._from_stored(found.pop("d", None) or {})
        self._meta = found if found["id"] is not None else None
        self._anonymous_ttl = None if self._meta else found["ttl"]
        self._drop_unsaved()
        self._rotated = False
        self._cookie = COOKIE_SET

    def _forget(self) -> None:
        self._token = None
        self._meta = None
        self._anonymous_ttl = None
        self._data = {}
        self._drop_unsaved()
        self._cookie = COOKIE_EXPIRE

    def destroy(self) -> int:
        """Kill this session and expire the cookie; returns how many sessions were killed. The
        object stays usable as a fresh session (a later write stores a new anonymous one).

        A logout happens or raises, whatever ``on_backend_error`` says: when this request could
        not load the session (Redis failed), the kill is still tried with the cookie's token
        (it runs even when Redis is out of memory) and its error, if any, is raised. The cookie
        is expired in every case."""
        return self._drive(self._destroy_op())

    def _logout_token(self) -> SessionOp[str | None]:
        """The token a logout ends: the session's, or the cookie's when its load failed."""
        try:
            yield from self._ensure_loaded()
        except BackendError:  # on_backend_error="raise": the logout is still tried
            pass
        return self._token or self._lost_token

    def _destroy_op(self) -> SessionOp[int]:
        token = yield from self._logout_token()
        if token is None:
            return 0
        self._forget()  # the cookie is expired whatever happens next
        self._lost_token = None
        return (yield ("kill", (self.app, token), {}))

    def destroyall(self) -> int:
        """Kill every session of this user id (all devices) and expire the cookie; raises as
        ``destroy()`` does. When this request could not load the session the user is unknown:
        the Redis error is raised (the cookie expired)."""
        return self._drive(self._destroyall_op())

    def _check_user_known(self) -> None:
        """A logout of a user's sessions needs the user id, which a failed load could not tell:
        raise that failure rather than report nothing to end."""
        if self._lost_token is not None and self._backend_error is not None:
            raise self._backend_error

    def _destroyall_op(self) -> SessionOp[int]:
        yield from self._logout_token()
        if self._meta is None:
            if self._lost_token is not None:  # the load failed: the user is unknown
                self._forget()  # the cookie is expired, the failure raised below
            self._check_user_known()
            return 0
        user = self._meta["id"]
        self._forget()
        return (yield ("killsoid", (self.app, user), {}))

    # -- devices -------------------------------------------------------------------------------

    def devices(self) -> list[Device]:
        """This user's signed-in sessions as ``Device``s, this one (``current``) first, then the
        most recently active; [] while anonymous. No token is in a Device."""
        return self._drive(self._devices_op())

    def _devices_op(self) -> SessionOp[list[Device]]:
        yield from self._ensure_loaded()
        if self._meta is None:
            return []
        records = yield ("devices", (self.app, self._meta["id"]), {"current": self._token})
        return from_records(records)

    def _current_device_op(self) -> SessionOp[Device | None]:
        """This session's own Device (None while anonymous)."""
        if self._meta is None or self._token is None:
            return None
        records = yield ("devices", (self.app, self._meta["id"]),
                         {"current": self._token, "only_current": True})
        return from_records(records)[0] if records else None

    def destroydevice(self, handle: str) -> int:
        """End one of this user's sessions, named by its ``Device.handle``: 1, or 0 when the
        handle is not one of this user's devices (another user's included) or this session is
        not a signed-in one. Ending this session's own device logs it out (as ``destroy()``)."""
        return self._drive(self._destroydevice_op(handle))

    def _destroydevice_op(self, handle: str) -> SessionOp[int]:
        if not validate.is_device_handle(handle):  # form input: not one of them
            return 0
        yield from self._ensure_loaded()
        if self._meta is None or self._token is None:
            self._check_user_known()
            return 0
        ended = yield ("killdevice", (self.app, self._meta["id"], handle), {"by": self._token})
        if ended == DEVICE_ENDED_SELF:
            self._forget()
        return 1 if ended else 0

    def destroyothers(self) -> int:
        """End every session of this user but this one, in one atomic script; returns how many
        were ended (0 when this session is not a signed-in one any more)."""
        return self._drive(self._destroyothers_op())

    def _destroyothers_op(self) -> SessionOp[int]:
        yield from self._ensure_loaded()
        if self._meta is None or self._token is None:
            self._check_user_known()
            return 0
        return (yield ("killsoid", (self.app, self._meta["id"]), {"keep": self._token}))

    def soid(self) -> list[dict]:
        """The sessions of this user id (each with its ``token``); [] while anonymous."""
        return self._drive(self._soid_op())

    def _soid_op(self) -> SessionOp[list[dict]]:
        yield from self._ensure_loaded()
        if self._meta is None:
            return []
        return (yield ("soid", (self.app, self._meta["id"]), {}))

    def soapp(self, dt: int = 600) -> list[dict]:
        """The sessions of the app active in the last ``dt`` seconds."""
        return self._drive(self._soapp_op(dt))

    def _soapp_op(self, dt: int) -> SessionOp[list[dict]]:
        return (yield ("soapp", (self.app, dt), {}))

    def activity(self, dt: int = 600) -> int:
        """How many distinct user ids of the app were active in the last ``dt`` seconds."""
        return self._drive(self._activity_op(dt))

    def _activity_op(self, dt: int) -> SessionOp[int]:
        return (yield ("activity", (self.app, dt), {}))

    def save(self) -> None:
        """Write the changes now (one round trip, none when nothing changed). Errors raise.

        A session with nothing stored yet is stored as an anonymous one (unless the handler's
        ``anonymous`` is off: then, as in Node, only ``upgrade()`` stores it).
        Raises ``SessionRotated`` when a concurrent login replaced this request's token.
        """
        self._drive(self._save_op())

    def _save_op(self) -> SessionOp[None]:
        if self._blind is not None and self._data is None and not self._force:
            yield from self._blind_save_op()
            return
        if self._snap is None and not self._force and self._new_ttl is None:
            return
        if self._rotated:
            raise SessionRotated(_ROTATED_MESSAGE)
        handler = self._handler
        yield from self._ensure_loaded()
        if self._token is None:
            yield from self._create_op(handler)
            return
        changes = self._pending()
        anonymous = self._meta is None
        if changes or self._new_ttl is not None or self._force:
            found = yield ("apply_changes", (self.app, self._token, changes), {
                "ttl": self._new_ttl, "anonymous": anonymous, "keep_empty": self._force,
                "follow": True,
            })
            if found is None:  # the session is gone (killed elsewhere, or expired)
                logger.info("session of app %s ended before its changes were saved", self.app)
                self._forget()
                return
            if "rotated" in found:
                if not found["saved"]:
                    self._rotated = True
                    self._snap = None
                    raise SessionRotated(_ROTATED_MESSAGE)
            elif anonymous and "d" not in found and not self._force:  # emptied: it is gone
                self._forget()
                return
            else:
                found.pop("d", None)
                if anonymous:
                    self._anonymous_ttl = found["ttl"]
                else:
                    self._meta = found
                if self._force or (handler.cookie.max_age is not None
                                   and self._cookie == COOKIE_KEEP):
                    self._cookie = COOKIE_SET
        self._drop_unsaved()

    def _blind_save_op(self) -> SessionOp[None]:
        """Save writes made without reading in ONE round trip: the set script merges them into
        whichever session the token names and answers whether there was one."""
        blind = self._blind or {}
        codec = self._handler.codec
        view = blind if codec is None else {
            k: None if v is None else codec.dump(v) for k, v in blind.items()}
        found = yield ("apply_changes", (self.app, self._token, core.encode_changes(view)), {
            "ttl": self._new_ttl, "anonymous": self._handler.anonymous, "follow": True})
        self._drop_unsaved()
        if found is None:  # a stale cookie: its writes start a new anonymous session
            self._forget()
            self._data = {k: v for k, v in blind.items() if v is not None}
            self._snap = {}
            yield from self._create_op(self._handler)
        elif "rotated" in found:
            self._token = None
            if not found["saved"]:
                self._rotated = True
                raise SessionRotated(_ROTATED_MESSAGE)
        else:
            stored = found.pop("d", None) or {}
            self._data = self._from_stored(stored)
            if found["id"] is None:
                self._anonymous_ttl = found["ttl"]
                if not stored:  # emptied: it is gone
                    self._forget()
            else:
                self._meta = found
                if self._handler.cookie.max_age is not None and self._cookie == COOKIE_KEEP:
                    self._cookie = COOKIE_SET
            if self._resign and self._token is not None and self._cookie == COOKIE_KEEP:
                self._cookie = COOKIE_SET

    def _create_op(self, handler: SessionHandler) -> SessionOp[None]:
        """Store this request's data as a new anonymous session (its first write)."""
        view = self._stored_form()
        if not handler.anonymous or (not view and not self._force):
            self._drop_unsaved()
            return
        ttl = self._new_ttl or handler.anonymous_ttl
        self._token = yield ("create_anonymous", (self.app, view, ttl), {})
        self._anonymous_ttl = ttl
        self._drop_unsaved()
        self._cookie = COOKIE_SET

    def reload(self) -> None:
        """Read the session again from Redis, dropping unsaved changes."""
        self._drive(self._reload_op())

    def _reload_op(self) -> SessionOp[None]:
        self._drop_unsaved()
        self._data = {} if self._token is None else (yield from self._load_op())

    # -- end of request ------------------------------------------------------------------------

    @property
    def _unsaved(self) -> bool:
        """Whether there is data to diff or save (changes, a forced save, a new ttl)."""
        return (self._snap is not None or self._force or self._new_ttl is not None
                or self._blind is not None)

    @property
    def expiring(self) -> bool:
        """Whether the response must expire the cookie (after a logout, or for a stale cookie),
        even when saving this request's other changes failed."""
        return self._cookie == COOKIE_EXPIRE

    @property
    def pending(self) -> bool:
        """Whether ``finish()`` has work: data to diff or save, or a cookie to set or expire."""
        return self._unsaved or self._cookie != COOKIE_KEEP

    def finish(self) -> int:
        """Save pending changes (unless ``failed``) per the error policy, and return what to do
        with the cookie: COOKIE_KEEP, COOKIE_SET or COOKIE_EXPIRE (then reset)."""
        return self._drive(self._finish_op())

    def _finish_op(self) -> SessionOp[int]:
        if self._unsaved:
            if self.failed:
                self._drop_unsaved()
            else:
                handler = self._handler
                try:
                    yield from self._save_op()
                except SessionRotated as exc:
                    logger.warning("session of app %s: changes %s", self.app, exc)
                except (BackendError, ValidationError) as exc:
                    self._drop_unsaved()
                    # on_backend_error is for Redis failures; the app's own (too large, bad
                    # values) always reach it
                    if handler.raise_errors or isinstance(exc, ValidationError):
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


SessionHandler.session_class = Session


async def drive_async(session: Session, op: SessionOp[T],
                      manager: AsyncRedisSessions | None = None) -> T:
    """Run a session operation against an async manager (the handler's by default): what
    ``Session._drive`` does, awaited. Used by the ASGI session and Django's async methods."""
    target: Any = session._handler.manager if manager is None else manager
    try:
        name, args, kwargs = next(op)
        while True:
            try:
                session._check_backend(name)
                result = await getattr(target, name)(*args, **kwargs)
            except SessionError as exc:
                name, args, kwargs = op.throw(exc)
            else:
                name, args, kwargs = op.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
