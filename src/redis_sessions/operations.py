"""The redis-sessions operations without their I/O, shared by the sync and the async manager.

Each operation is a generator (the sans-I/O style): it validates its arguments, yields the Redis
calls it needs (``Call`` a script, ``Calls`` one script for many key sets pipelined, ``Command`` a
plain command), receives each reply, and returns the result. ``RedisSessions`` (manager.py) drives
them through the blocking wire; an async manager drives the very same generators with awaits, so
validation, key naming, scripts and reply parsing exist once.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar, Union

from . import core, scripts, validate
from ._constants import MAX_DATA_BYTES, MAX_DATA_KEYS, ROTATION_GRACE
from .cache import LocalCache
from .errors import BackendError, SessionError, ValidationError
from .keys import Keys, parse_expiry_member

Session = dict[str, Any]
Arg = Union[bytes, str, int]
T = TypeVar("T")

# How many sessions one killall()/wipe() step handles, so Redis never blocks for long.
CHUNK = 500
_MAX_APP_CONTEXTS = 1024
# Script replies besides a session (scripts/_lib.lua): a rotated token; a change forwarded to it
_ROTATED = 2
_FORWARDED = 3


class Call(NamedTuple):
    """Run one script (EVALSHA) with these keys and arguments."""

    script: scripts.Script
    keys: tuple[Arg, ...]
    args: tuple[Arg, ...]


class Calls(NamedTuple):
    """Run one script for several (keys, args) sets in one round trip."""

    script: scripts.Script
    calls: list[tuple[tuple[Arg, ...], tuple[Arg, ...]]]


class Command(NamedTuple):
    """Run one plain Redis command."""

    args: tuple[Arg, ...]


Step = Union[Call, Calls, Command]
Op = Generator[Step, Any, T]


class AppContext:
    """The keys and leading script arguments of one app, built once per app."""

    __slots__ = ("keys", "args", "session_prefix", "user_prefix", "anonymous_prefix",
                 "rotated_prefix")

    def __init__(self, keys: Keys, app: str, redis_ttl: bool) -> None:
        self.session_prefix = keys.session_prefix(app)
        self.user_prefix = keys.user_prefix(app)
        self.anonymous_prefix = keys.anonymous_prefix(app)
        self.rotated_prefix = keys.rotated_prefix(app)
        self.keys = (keys.sessions(app), keys.users(app), keys.expiry)
        self.args = (app, self.session_prefix, self.user_prefix, keys.cache_channel,
                     "1" if redis_ttl else "0")

    def token_keys(self, token: str) -> tuple[str, str, str]:
        """The keys a token may name: its user session, its anonymous session, its rotation mark."""
        return (self.session_prefix + token, self.anonymous_prefix + token,
                self.rotated_prefix + token)

    def call(self, script: scripts.Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Call:
        return Call(script, (*self.keys, *keys), (*self.args, *args))


def parse(reply: object) -> Session | None:
    """A script's session reply parsed; an anonymous session's ``id`` is None."""
    session = core.parse_session(reply)
    if session is not None and not session["id"]:
        session["id"] = None
    return session


def _sessions_with_tokens(flat: list[Any]) -> list[Session]:
    out = []
    for i in range(0, len(flat), 2):
        session = core.parse_session(flat[i + 1])
        if session is not None:
            token = flat[i]
            session["token"] = token.decode() if isinstance(token, bytes) else token
            out.append(session)
    return out


def _check_token(token: object) -> str:
    return token if core.is_token(token) else validate.token(token)  # type: ignore[return-value]


def _retry_on_collision(error: SessionError) -> None:
    """A token collision (RSEXISTS) is astronomically unlikely; anything else is raised."""
    if not isinstance(error, BackendError) or "RSEXISTS" not in str(error):
        raise error


class Operations:
    """Configuration, per-app contexts and the operations as generators (no I/O here)."""

    cache: LocalCache | None

    def __init__(self, namespace: str, redis_ttl: bool, max_data_keys: int = MAX_DATA_KEYS,
                 max_data_bytes: int = MAX_DATA_BYTES) -> None:
        if not isinstance(namespace, str) or not namespace or ":" in namespace:
            raise ValidationError("invalidFormat", "Invalid namespace format")
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.redis_ttl = bool(redis_ttl)
        self.limits = (max_data_bytes, max_data_keys)
        self._apps: dict[str, AppContext] = {}
        self.cache = None

    def _app(self, app: str) -> AppContext:
        """The validated app's context."""
        context = self._apps.get(app) if type(app) is str else None  # (unhashable input)
        if context is None:
            name = validate.app(app)
            if len(self._apps) >= _MAX_APP_CONTEXTS:
                self._apps.clear()
            context = self._apps[name] = AppContext(self.keys, name, self.redis_ttl)
        return context

    # -- the operations --------------------------------------------------------------------------

    def _create(self, app: str, id: str | int, ip: str, ttl: int,
                d: Mapping[str, object] | None, no_resave: bool, max_sessions: int | None
                ) -> Op[str]:
        ctx = self._app(app)
        user = validate.user_id(id)
        address = validate.ip(ip)
        ttl = validate.ttl(ttl)
        cap = validate.max_sessions(max_sessions)
        if d is not None and not isinstance(d, Mapping):
            raise ValidationError("invalidValue", "d must be an object")
        changes = core.encode_changes(d) if d else []
        for _ in range(3):
            token = core.new_token()
            try:
                yield ctx.call(
                    scripts.CREATE, (ctx.session_prefix + token, ctx.user_prefix + user),
                    (token, user, address, ttl, "1" if no_resave else "0", cap, *self.limits,
                     *changes),
                )
                return token
            except SessionError as exc:
                _retry_on_collision(exc)
        raise BackendError("could not find an unused token")

    def _get(self, app: str, token: str, anonymous: bool, rotated: bool) -> Op[Session | None]:
        ctx = self._app(app)
        token = _check_token(token)
        cache = self.cache
        ticket = None
        if cache is not None:
            hit = cache.get(app, token)
            if hit is not None:
                return hit
            ticket = cache.ticket()  # before the read: an invalidation handled after voids the put
        reply = yield ctx.call(scripts.GET, ctx.token_keys(token),
                               (token, "1" if anonymous else "0"))
        if reply == _ROTATED:
            return {"id": None, "rotated": True} if rotated else None
        session = parse(reply)
        if cache is not None and session is not None and session["id"] is not None:
            cache.put(app, token, session, ticket)
        return session

    def _apply_changes(self, app: str, token: str, changes: Sequence[bytes], ttl: int | None,
                       anonymous: bool, keep_empty: bool, follow: bool) -> Op[Session | None]:
        ctx = self._app(app)
        token = _check_token(token)
        new_ttl = "" if ttl is None else validate.ttl(ttl)
        if self.cache is not None:
            self.cache.drop(app, token)
        reply = yield ctx.call(
            scripts.SET, ctx.token_keys(token),
            (token, *self.limits, new_ttl, ("2" if keep_empty else "1") if anonymous else "0",
             "1" if follow else "0", *changes),
        )
        if reply == _ROTATED or reply == _FORWARDED:
            return {"id": None, "rotated": True, "saved": reply == _FORWARDED}
        return parse(reply)

    def _create_anonymous(self, app: str, d: Mapping[str, object], ttl: int) -> Op[str]:
        ctx = self._app(app)
        ttl = validate.ttl(ttl)
        if not isinstance(d, Mapping):
            raise ValidationError("invalidValue", "d must be an object")
        changes = core.encode_changes(d)
        for _ in range(3):
            token = core.new_token()
            try:
                yield ctx.call(scripts.CREATE_ANONYMOUS, (ctx.anonymous_prefix + token,),
                               (ttl, *self.limits, *changes))
                return token
            except SessionError as exc:
                _retry_on_collision(exc)
        raise BackendError("could not find an unused token")

    def _rotate(self, app: str, token: str | None, user: str, ip: str, ttl: int | None,
                changes: Sequence[bytes]) -> Op[Session | None]:
        """upgrade (``user`` given) or regenerate (``user`` ""), in one script."""
        ctx = self._app(app)
        old = "" if token is None else _check_token(token)
        address = validate.ip(ip)
        if user:
            user = validate.user_id(user)
        if ttl is not None:
            ttl = validate.ttl(ttl)
        if old and self.cache is not None:
            self.cache.drop(app, old)
        keys = ctx.token_keys(old) if old else ("", "", "")
        for _ in range(3):
            new = core.new_token()
            try:
                reply = yield ctx.call(
                    scripts.ROTATE,
                    (*keys, ctx.session_prefix + new, ctx.anonymous_prefix + new),
                    (old, new, user, address, "" if ttl is None else ttl, ROTATION_GRACE,
                     *self.limits, *changes),
                )
            except SessionError as exc:
                _retry_on_collision(exc)
                continue
            session = parse(reply)
            if session is not None:
                session["token"] = new
            return session
        raise BackendError("could not find an unused token")

    def _kill(self, app: str, token: str) -> Op[int]:
        ctx = self._app(app)
        token = _check_token(token)
        if self.cache is not None:
            self.cache.drop(app, token)
        keys = (ctx.session_prefix + token, ctx.anonymous_prefix + token)
        return int((yield ctx.call(scripts.KILL, keys, (token, "", "0"))))

    def _killsoid(self, app: str, id: str | int) -> Op[int]:
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        if self.cache is not None:
            self.cache.flush()
        return int((yield ctx.call(scripts.KILLSOID, (ctx.user_prefix + user,), (user,))))

    def _killall(self, app: str) -> Op[int]:
        ctx = self._app(app)
        if self.cache is not None:
            self.cache.flush()
        total = 0
        while True:
            killed, seen = yield ctx.call(scripts.KILLALL, (), (CHUNK,))
            total += int(killed)
            if int(seen) < CHUNK:
                return total

    def _soid(self, app: str, id: str | int) -> Op[list[Session]]:
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        return _sessions_with_tokens((yield ctx.call(scripts.SOID, (ctx.user_prefix + user,), ())))

    def _soapp(self, app: str, dt: int) -> Op[list[Session]]:
        ctx = self._app(app)
        return _sessions_with_tokens((yield ctx.call(scripts.SOAPP, (), (validate.dt(dt),))))

    def _activity(self, app: str, dt: int) -> Op[int]:
        ctx = self._app(app)
        return int((yield ctx.call(scripts.ACTIVITY, (), (validate.dt(dt),))))

    def _wipe(self) -> Op[int]:
        """Remove expired sessions in chunks of CHUNK; each is re-checked inside its removal
        script, so many processes may wipe at once and a session refreshed meanwhile survives."""
        total = 0
        expiry = self.keys.expiry
        for _ in range(10_000):  # bounded: each pass removes or re-scores what it saw
            now = int((yield Command((b"TIME",)))[0])
            members = yield Command(
                (b"ZRANGEBYSCORE", expiry, b"-inf", f"({now}", b"LIMIT", 0, CHUNK)
            )
            if not members:
                break
            by_app: dict[str, list[tuple[tuple[Arg, ...], tuple[Arg, ...]]]] = {}
            stray: list[Arg] = []
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
                call = ctx.call(scripts.KILL, (ctx.session_prefix + member.token,),
                                (member.token, member.id, "1"))
                by_app.setdefault(member.app, []).append((call.keys, call.args))
            if stray:
                yield Command((b"ZREM", expiry, *stray))
            for calls in by_app.values():
                total += sum(int(n) for n in (yield Calls(scripts.KILL, calls)))
            if len(members) < CHUNK:
                break
        return total
