"""``RedisSessions``: Node redis-sessions' API over one Redis, race-free and one round trip each.

create/get/set/kill run one Lua script each (scripts/*.lua): atomic, so concurrent set() calls
never lose each other's keys and nothing recreates a killed or expired session. The stored layout
is Node's (keys.py), so Node and Python processes share sessions. This module knows nothing of
HTTP; the web layer calls it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis

from . import core, scripts, validate
from ._constants import (
    DEFAULT_CACHE_MAX,
    DEFAULT_NAMESPACE,
    DEFAULT_TTL,
    DEFAULT_WIPE,
    MAX_DATA_BYTES,
    MAX_DATA_KEYS,
    MIN_TTL,
)
from .cache import LocalCache
from .errors import BackendError, ValidationError
from .keys import Keys, parse_expiry_member
from .wiper import Wiper
from .wire import Arg, Wire, backend_error

Session = dict[str, Any]
T = TypeVar("T")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
# Timeouts for clients built here (a URL or REDIS_URL); a client passed in keeps its own.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
# How many sessions one killall()/wipe() step handles, so Redis never blocks for long.
CHUNK = 500
_MAX_APP_CONTEXTS = 1024


def make_client(redis_: redis.Redis | str | None) -> tuple[redis.Redis, bool]:
    """The client to use and whether we own it (built it, so close() closes it)."""
    if isinstance(redis_, redis.Redis):
        return redis_, False
    url = redis_ or os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise TypeError("redis must be a redis.Redis client, a URL string or None")
    client = redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    return client, True


class _AppContext:
    """The keys and leading script arguments of one app, built once per app."""

    __slots__ = ("keys", "args", "session_prefix", "user_prefix")

    def __init__(self, keys: Keys, app: str, channel: str, redis_ttl: bool) -> None:
        self.session_prefix = keys.session_prefix(app)
        self.user_prefix = keys.user_prefix(app)
        self.keys = (keys.sessions(app), keys.users(app), keys.expiry)
        self.args = (app, self.session_prefix, self.user_prefix, channel, "1" if redis_ttl else "0")


class RedisSessions:
    """Sessions of many apps and many ids per app, in one Redis namespace.

    ``redis`` is a redis.Redis client, a URL, or None (``REDIS_URL``, else the local default).
    ``wipe`` is the wiper's period in seconds (0 disables it, otherwise at least 10);
    ``cache_time`` > 0 turns on the local cache of get() replies, for that many seconds.
    ``redis_ttl`` keeps a Redis TTL on every session key so memory is reclaimed even when no
    wiper runs; turn it off when Node processes share the sessions (Node never refreshes it).
    """

    def __init__(
        self,
        redis: redis.Redis | str | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        wipe: int = DEFAULT_WIPE,
        cache_time: float = 0,
        cache_max: int = DEFAULT_CACHE_MAX,
        redis_ttl: bool = True,
        max_data_keys: int = MAX_DATA_KEYS,
        max_data_bytes: int = MAX_DATA_BYTES,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or ":" in namespace:
            raise ValidationError("invalidFormat", "Invalid namespace format")
        if wipe and (not isinstance(wipe, int) or wipe < MIN_TTL):
            raise ValidationError("invalidValue", f"wipe must be 0 or an integer >= {MIN_TTL}")
        self.client, self._owns_client = make_client(redis)
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.redis_ttl = bool(redis_ttl)
        self.limits = (max_data_bytes, max_data_keys)
        self._wire = Wire(self.client)
        self._apps: dict[str, _AppContext] = {}
        self.cache = (
            LocalCache(self.client, self.keys.cache_channel, cache_time, cache_max)
            if cache_time > 0
            else None
        )
        self.wiper = Wiper(self.wipe, wipe) if wipe else None

    # -- helpers -------------------------------------------------------------------------------

    def _app(self, app: str) -> _AppContext:
        """The validated app's context; also starts this process's wiper on first use."""
        context = self._apps.get(app) if type(app) is str else None  # (unhashable input)
        if context is None:
            name = validate.app(app)
            if len(self._apps) >= _MAX_APP_CONTEXTS:
                self._apps.clear()
            context = self._apps[name] = _AppContext(
                self.keys, name, self.keys.cache_channel, self.redis_ttl
            )
        if self.wiper is not None:
            self.wiper.ensure_started()
        return context

    @staticmethod
    def _token(token: object) -> str:
        return token if core.is_token(token) else validate.token(token)  # type: ignore[return-value]

    def _run(
        self, script: scripts.Script, ctx: _AppContext, key: Arg | None, args: Sequence[Arg]
    ) -> Any:
        keys = ctx.keys if key is None else (*ctx.keys, key)
        return self._wire.run(script, keys, (*ctx.args, *args))

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call plain redis-py (paths off the request path), with our exceptions."""
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise backend_error(exc) from exc

    def _sessions_with_tokens(self, flat: list[Any]) -> list[Session]:
        out = []
        for i in range(0, len(flat), 2):
            session = core.parse_session(flat[i + 1])
            if session is not None:
                token = flat[i]
                session["token"] = token.decode() if isinstance(token, bytes) else token
                out.append(session)
        return out

    # -- the redis-sessions API ------------------------------------------------------------------

    def create(
        self,
        app: str,
        id: str | int,
        ip: str,
        ttl: int = DEFAULT_TTL,
        d: Mapping[str, object] | None = None,
        no_resave: bool = False,
        max_sessions: int | None = None,
    ) -> str:
        """Create a session for user ``id``; returns its token.

        With ``max_sessions`` the id's least recently active sessions beyond that number are
        killed in the same atomic step.
        """
        ctx = self._app(app)
        user = validate.user_id(id)
        address = validate.ip(ip)
        ttl = validate.ttl(ttl)
        cap = validate.max_sessions(max_sessions)
        if d is not None and not isinstance(d, Mapping):
            raise ValidationError("invalidValue", "d must be an object")
        changes = core.encode_changes(d) if d else []
        for _ in range(3):  # a token collision is astronomically unlikely; retry regardless
            token = core.new_token()
            try:
                self._wire.run(
                    scripts.CREATE,
                    (*ctx.keys, ctx.session_prefix + token, ctx.user_prefix + user),
                    (*ctx.args, token, user, address, ttl, "1" if no_resave else "0", cap,
                     *self.limits, *changes),
                )
                return token
            except BackendError as exc:
                if "RSEXISTS" not in str(exc):
                    raise
        raise BackendError("could not find an unused token")

    def get(self, app: str, token: str) -> Session | None:
        """The session of ``token`` (recording the activity), or None when there is none."""
        ctx = self._app(app)
        token = self._token(token)
        cache = self.cache
        if cache is not None:
            hit = cache.get(app, token)
            if hit is not None:
                return hit
        session = core.parse_session(
            self._run(scripts.GET, ctx, ctx.session_prefix + token, (token,))
        )
        if cache is not None and session is not None:
            cache.put(app, token, session)
        return session

    def set(self, app: str, token: str, d: Mapping[str, object]) -> Session | None:
        """Merge ``d`` into the session's data (None values delete keys), atomically.

        Returns the updated session, or None when the session does not exist (nothing is
        recreated).
        """
        return self.apply_changes(app, token, core.encode_changes(validate.data(d)))

    def apply_changes(self, app: str, token: str, changes: Sequence[bytes]) -> Session | None:
        """set() for a change set already encoded by ``core.diff``/``core.encode_changes``."""
        ctx = self._app(app)
        token = self._token(token)
        if self.cache is not None:
            self.cache.drop(app, token)
        return core.parse_session(
            self._run(scripts.SET, ctx, ctx.session_prefix + token, (token, *self.limits, *changes))
        )

    def kill(self, app: str, token: str) -> int:
        """Remove one session; returns 1, or 0 when it did not exist."""
        ctx = self._app(app)
        token = self._token(token)
        if self.cache is not None:
            self.cache.drop(app, token)
        return int(self._run(scripts.KILL, ctx, ctx.session_prefix + token, (token, "", "0")))

    def killsoid(self, app: str, id: str | int) -> int:
        """Remove every session of user ``id``; returns how many there were."""
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        if self.cache is not None:
            self.cache.flush()
        return int(self._run(scripts.KILLSOID, ctx, ctx.user_prefix + user, (user,)))

    def killall(self, app: str) -> int:
        """Remove every session of ``app`` (in bounded steps); returns how many there were."""
        ctx = self._app(app)
        if self.cache is not None:
            self.cache.flush()
        total = 0
        while True:
            killed, seen = self._run(scripts.KILLALL, ctx, None, (CHUNK,))
            total += int(killed)
            if int(seen) < CHUNK:
                return total

    def soid(self, app: str, id: str | int) -> list[Session]:
        """The live sessions of user ``id``, each with its ``token`` (activity not recorded)."""
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        return self._sessions_with_tokens(self._run(scripts.SOID, ctx, ctx.user_prefix + user, ()))

    def soapp(self, app: str, dt: int) -> list[Session]:
        """The live sessions of ``app`` active within ``dt`` seconds, newest first."""
        ctx = self._app(app)
        return self._sessions_with_tokens(self._run(scripts.SOAPP, ctx, None, (validate.dt(dt),)))

    def activity(self, app: str, dt: int) -> int:
        """How many distinct user ids of ``app`` were active within ``dt`` seconds."""
        ctx = self._app(app)
        return int(self._run(scripts.ACTIVITY, ctx, None, (validate.dt(dt),)))

    def wipe(self) -> int:
        """Remove the expired sessions of every app now; returns how many were removed.

        Works in chunks of ``CHUNK`` and re-checks each session inside its removal script, so
        many processes may wipe at once and a session refreshed meanwhile survives.
        """
        total = 0
        for _ in range(10_000):  # bounded: each pass removes or re-scores what it saw
            now = self._call(self.client.time)[0]
            members = self._call(
                self.client.zrangebyscore, self.keys.expiry, "-inf", f"({now}", start=0, num=CHUNK
            )
            if not members:
                break
            by_app: dict[str, list[tuple[tuple[Arg, ...], tuple[Arg, ...]]]] = {}
            stray = []
            for raw in members:
                text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
                member = parse_expiry_member(str(text))
                try:
                    if member is None or not core.is_token(member.token):
                        raise ValidationError("invalidFormat", "malformed expiry member")
                    ctx = self._app(member.app)
                except ValidationError:
                    stray.append(raw)
                    continue
                by_app.setdefault(member.app, []).append(
                    (
                        (*ctx.keys, ctx.session_prefix + member.token),
                        (*ctx.args, member.token, member.id, "1"),
                    )
                )
            if stray:
                self._call(self.client.zrem, self.keys.expiry, *stray)
            for calls in by_app.values():
                total += sum(int(n) for n in self._wire.run_many(scripts.KILL, calls))  # type: ignore[call-overload]
            if len(members) < CHUNK:
                break
        return total

    def ping(self) -> bool:
        """True when Redis answers."""
        return bool(self._call(self.client.ping))

    def close(self) -> None:
        """Stop the wiper and the cache listener and give connections back."""
        if self.wiper is not None:
            self.wiper.stop()
        if self.cache is not None:
            self.cache.close()
        self._wire.release()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RedisSessions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
