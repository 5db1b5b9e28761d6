"""The redis-sessions operations without their I/O, shared by the sync and the async manager.

Each operation is a generator (the sans-I/O style): it validates its arguments, yields the Redis
calls it needs (``Call`` a script, ``Calls`` one script for many key sets pipelined, ``Command`` a
plain command), receives each reply, and returns the result. ``RedisSessions`` (manager.py) drives
them through the blocking wire; an async manager drives the very same generators with awaits, so
validation, key naming, scripts and reply parsing exist once.

Both layouts (keys.py) run the same scripts: an ``AppContext`` holds the keys and prefixes of
one slot's worth of data (Node's layout: the whole app; the cluster layout: one bucket, found
from a user id or a token), and the admin operations fan out over every context of an app in
bounded, pipelined steps. ``durability="replicated"`` marks with ``wait`` every step that writes
session data or ends sessions (create, create_anonymous, set/apply_changes, upgrade, regenerate,
take, kill, killsoid, killall); get/load (activity only) and the wipe do not wait.
"""

from __future__ import annotations

import heapq
import logging
import secrets
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar, Union

from . import core, scripts, validate
from ._constants import (
    ANONYMOUS_SEPARATOR,
    DEFAULT_ACTIVITY_RESOLUTION,
    DEFAULT_REPLICAS,
    DEFAULT_WAIT_MS,
    DEVICE_HANDLE_BYTES,
    MAX_DATA_BYTES,
    MAX_ACTIVITY_RESOLUTION,
    MAX_DATA_KEYS,
    ROTATION_GRACE,
    TOKEN_RANDOM_LENGTH,
)
from .cache import LocalCache
from .errors import BackendError, BackendUnavailable, SessionError, ValidationError
from .eviction import OK, eviction_risks
from .keys import BUCKETS, ClusterKeys, Keys, parse_expiry_member, token_bucket, user_bucket
from .keys import with_bucket

Session = dict[str, Any]
Arg = scripts.Arg
T = TypeVar("T")
log = logging.getLogger("redis_sessions")

# Bounds on the work of one Redis call of the admin operations, so none blocks Redis for long
# whatever the data size (bench/scale.py measures them; each stays well under 5 ms):
CHUNK = 500  # wipe (Node's layout): expired members read per step, each killed by its own script
KILL_CHUNK = 50  # killall, killsoid, wipe (cluster layout): sessions killed by one script
PAGE = 100  # soapp, soid: sessions read by one script (iter_soapp/iter_soid: page=)
LAYOUTS = ("node", "cluster")
_MAX_APP_CONTEXTS = 1024
# Script replies besides a session (scripts/_lib.lua): a rotated token; a change forwarded to it
_ROTATED = 2
_FORWARDED = 3
#: killdevice's answers: a session was ended; the one ended was the requester's own
DEVICE_ENDED = 1
DEVICE_ENDED_SELF = 2


# (replicas, timeout in ms): after the step's writes, WAIT on the same connection until that many
# replicas acknowledged them; fewer in time raises ReplicationTimeout (durability="replicated").
Wait = tuple[int, int]


def replication_wait(durability: str | None, replicas: int = DEFAULT_REPLICAS,
                     timeout_ms: int = DEFAULT_WAIT_MS) -> Wait | None:
    """The managers' ``durability``/``replicas``/``timeout_ms`` options checked, as the writing
    steps' ``wait`` (None: no WAIT)."""
    if durability is None:
        return None
    if durability != "replicated":
        raise ValidationError("invalidValue", 'durability must be None or "replicated"')
    if not isinstance(replicas, int) or replicas < 1:
        raise ValidationError("invalidValue", "replicas must be an integer >= 1")
    if not isinstance(timeout_ms, int) or timeout_ms < 1:
        raise ValidationError("invalidValue", "timeout_ms must be an integer >= 1")
    return (replicas, timeout_ms)


class Call(NamedTuple):
    """Run one script (FCALL of its function) with these keys and arguments.

    Every key of one call lives in one cluster slot; a cluster wire routes by ``keys[0]``."""

    script: scripts.Script
    keys: tuple[Arg, ...]
    args: tuple[Arg, ...]
    wait: Wait | None = None


class Calls(NamedTuple):
    """Run one script for several (keys, args) sets in one round trip (one per master in a
    cluster, each set routed by its first key); replies come back in the order of ``calls``."""

    script: scripts.Script
    calls: list[tuple[tuple[Arg, ...], tuple[Arg, ...]]]
    wait: Wait | None = None


class Command(NamedTuple):
    """Run one plain Redis command; ``key`` (a key it touches, None for none) routes it in a
    cluster (None: any master)."""

    args: tuple[Arg, ...]
    key: Arg | None = None


class Commands(NamedTuple):
    """Run plain commands that only read, pipelined in one round trip on the master of
    ``key``'s slot (every key of them in that slot); their replies in order."""

    commands: tuple[tuple[Arg, ...], ...]
    key: Arg


Step = Union[Call, Calls, Command, Commands]
Op = Generator[Step, Any, T]


class AppContext:
    """The keys and leading script arguments of one app (in the cluster layout: of one bucket
    of one app, whose keys share a slot), built once."""

    __slots__ = ("keys", "args", "session_prefix", "user_prefix", "anonymous_prefix",
                 "rotated_prefix", "bucket", "registered")

    def __init__(self, keys: Keys | ClusterKeys, app: str, redis_ttl: bool,
                 bucket: int | None = None) -> None:
        self.bucket = bucket
        self.registered = True  # Node's layout: the wiper needs no list of apps
        if isinstance(keys, ClusterKeys):
            assert bucket is not None
            self.session_prefix = keys.session_prefix(app, bucket)
            self.user_prefix = keys.user_prefix(app, bucket)
            self.anonymous_prefix = keys.anonymous_prefix(app, bucket)
            self.rotated_prefix = keys.rotated_prefix(app, bucket)
            self.keys = (keys.sessions(app, bucket), keys.users(app, bucket),
                         keys.expiry(app, bucket))
        else:
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

    def call(self, script: scripts.Script, keys: Sequence[Arg], args: Sequence[Arg],
             wait: Wait | None = None) -> Call:
        return Call(script, (*self.keys, *keys), (*self.args, *args), wait)

    def new_token(self) -> str:
        token = core.new_token()
        return token if self.bucket is None else with_bucket(token, self.bucket)

    # Node's layout is one slot for everything: the lookups of the cluster layout give itself.
    def of_user(self, user: str) -> AppContext:
        return self

    def of_token(self, token: str) -> AppContext | None:
        return self

    def every(self) -> Sequence[AppContext]:
        return (self,)

    def any(self) -> AppContext:
        return self


class ClusterApp:
    """One app in the cluster layout: a context per bucket, built when first used."""

    __slots__ = ("keys", "app", "redis_ttl", "registered", "_buckets")

    def __init__(self, keys: ClusterKeys, app: str, redis_ttl: bool) -> None:
        self.keys, self.app, self.redis_ttl = keys, app, redis_ttl
        self.registered = False  # recorded in the apps set (for the wiper) by this process
        self._buckets: list[AppContext | None] = [None] * BUCKETS

    def bucket(self, bucket: int) -> AppContext:
        ctx = self._buckets[bucket]
        if ctx is None:
            ctx = self._buckets[bucket] = AppContext(self.keys, self.app, self.redis_ttl, bucket)
        return ctx

    def of_user(self, user: str) -> AppContext:
        return self.bucket(user_bucket(user))

    def of_token(self, token: str) -> AppContext | None:
        bucket = token_bucket(token)
        return None if bucket is None else self.bucket(bucket)

    def every(self) -> Sequence[AppContext]:
        return [self.bucket(b) for b in range(BUCKETS)]

    def any(self) -> AppContext:
        return self.bucket(secrets.randbelow(BUCKETS))


class _Stream:
    """One index's position in a soapp listing: its next entries, newest first."""

    __slots__ = ("ctx", "floor", "after", "items", "done")

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.floor: Arg = ""
        self.after: tuple[Arg, Arg] = ("", "")
        self.items: list[tuple[float, Session]] = []  # reversed: the newest is last
        self.done = False

    def call(self, dt: int, page: int) -> Call:
        return self.ctx.call(scripts.SOAPP, (), (dt, self.floor, *self.after, page))

    def fill(self, reply: list[Any]) -> None:
        self.floor = reply[0]
        if reply[1] is None:
            self.done = True
        else:
            self.after = (reply[1], reply[2])
        flat = reply[3:]
        items = []
        for i in range(0, len(flat), 3):
            session = parse(flat[i + 1])
            if session is not None:
                token = flat[i]
                session["token"] = token.decode() if isinstance(token, bytes) else token
                items.append((float(flat[i + 2]), session))
        items.reverse()
        self.items = items


class SoappListing:
    """The state of one soapp listing across pages: every index merged, newest first."""

    __slots__ = ("dt", "page", "streams", "heap", "started")

    def __init__(self, contexts: Sequence[AppContext], dt: int, page: int) -> None:
        self.dt = dt
        self.page = page
        self.streams = [_Stream(ctx) for ctx in contexts]
        self.heap: list[tuple[float, int]] = []  # (-score of a stream's newest entry, stream)
        self.started = False

    def stream_page(self) -> int:
        """Entries read per script: a fan-out reads less from each bucket."""
        return self.page if len(self.streams) == 1 else max(16, self.page // 8)


class SoidListing:
    """The state of one soid listing across pages: the SSCAN cursor, and the tokens already
    given (SSCAN may return a member twice)."""

    __slots__ = ("ctx", "cursor", "page", "seen", "user")

    def __init__(self, ctx: AppContext, user: str, page: int) -> None:
        self.ctx = ctx
        self.user = user
        self.page = page
        self.cursor: Arg | None = "0"  # None once SSCAN said it is done
        self.seen: set[str] = set()


def _check_page(page: object) -> int:
    if not isinstance(page, int) or page < 1:
        raise ValidationError("invalidValue", "page must be a positive integer")
    return page


# what a session's hash holds, read by the functions (scripts/_lib.lua's load()) and by a hot load
_FIELDS = (b"id", b"r", b"w", b"ttl", b"d", b"la", b"ip", b"no_resave")
_ANONYMOUS_FIELDS = (b"d", b"ttl", b"la")


def fresh_limit(stored_ttl: int, no_resave: bool, resolution: int) -> int:
    """The seconds of idleness after which a use records activity (moves ``la``): Node's rule
    (more than 1 s; no_resave: more than 0 s) at a resolution of 1 or less; above, the
    resolution, at most a tenth of the stored ttl. The same rule as scripts/_lib.lua's."""
    limit = min(resolution, stored_ttl // 10)
    limit = max(limit, 1)
    return limit - 1 if no_resave else limit


def _stored(id_: bytes, r: bytes, w: bytes, stored_ttl: int, last: int, ip: bytes | None,
            d: bytes | None, fixed: bool, now: int) -> Session | None:
    """Node's session dict from a session hash's stored texts (its ttl and la already read as
    numbers; ``fixed``: no_resave) at the server's time ``now`` (idle and a no_resave session's
    remaining ttl computed); None when they are no session's. An anonymous session's ``id`` is
    None."""
    try:
        reads, writes = int(r), int(w)
    except (TypeError, ValueError):
        return None
    idle = now - last
    session = core.parse_session([id_, reads, writes, stored_ttl - idle if fixed else stored_ttl,
                                  idle, ip or None, d or None, 1 if fixed else 0])
    if session is not None and not session["id"]:
        session["id"] = None
    return session


def parse_text(reply: object) -> tuple[Session | None, int]:
    """A function's session reply (scripts/_lib.lua's reply(): one text, line-separated) as
    Node's session dict, and the server's time it carries (0 when it is no session reply)."""
    if type(reply) is not bytes:
        if not isinstance(reply, str):
            return None, 0
        reply = reply.encode("utf-8", "surrogateescape")
    parts = reply.split(b"\n", 8)
    if len(parts) != 9:
        return None, 0
    now_text, r, w, ttl, la, no_resave, id_, ip, d = parts
    try:
        now = int(now_text)
    except ValueError:
        return None, 0
    try:
        stored_ttl, last = int(ttl), int(la)
    except ValueError:
        return None, now
    return _stored(id_, r, w, stored_ttl, last, ip, d, no_resave == b"1", now), now


def parse(reply: object) -> Session | None:
    """A function's session reply parsed; an anonymous session's ``id`` is None."""
    return parse_text(reply)[0]


def _sessions_with_tokens(flat: list[Any]) -> list[Session]:
    out = []
    for i in range(0, len(flat), 2):
        session = parse(flat[i + 1])
        if session is not None:
            token = flat[i]
            session["token"] = token.decode() if isinstance(token, bytes) else token
            out.append(session)
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _anonymous_shaped(token: str) -> bool:
    """Whether ``token`` has an anonymous session's shape (made by ``_anonymous_token``)."""
    return token[TOKEN_RANDOM_LENGTH] == ANONYMOUS_SEPARATOR


def _anonymous_token(token: str) -> str:
    """A new token given an anonymous session's shape: Node's separator replaced (the random
    letters and the time kept; Node never makes such a token)."""
    return token[:TOKEN_RANDOM_LENGTH] + ANONYMOUS_SEPARATOR + token[TOKEN_RANDOM_LENGTH + 1:]


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
                 max_data_bytes: int = MAX_DATA_BYTES, layout: str = "node",
                 wait: Wait | None = None,
                 activity_resolution: int = DEFAULT_ACTIVITY_RESOLUTION) -> None:
        if not isinstance(namespace, str) or not namespace or ":" in namespace:
            raise ValidationError("invalidFormat", "Invalid namespace format")
        if layout not in LAYOUTS:
            raise ValidationError("invalidValue", f"layout must be one of {LAYOUTS}")
        self.namespace = namespace
        self.layout = layout
        self._checked_not_cluster = layout == "cluster"  # ping() checks once
        self.keys: Keys | ClusterKeys = ClusterKeys(namespace) if layout == "cluster" \
            else Keys(namespace)
        self.redis_ttl = bool(redis_ttl)
        self.limits = (max_data_bytes, max_data_keys)
        self.wait = wait
        self._apps: dict[str, AppContext | ClusterApp] = {}
        self.cache = None
        self._server_checked = False  # the eviction policy is checked at the first call
        if (not isinstance(activity_resolution, int) or isinstance(activity_resolution, bool)
                or not 0 <= activity_resolution <= MAX_ACTIVITY_RESOLUTION):
            raise ValidationError("invalidValue", "activity_resolution must be an integer of "
                                  f"seconds from 0 to {MAX_ACTIVITY_RESOLUTION}")
        self.resolution = activity_resolution
        # Bounds of (the server's time - time.monotonic()) from the last function reply (None
        # before the first): a hot load decides by the upper one (its idle is never under the
        # server's) and reports idle by the lower one (never over it).
        self._clock: tuple[float, float] | None = None

    def _refuse_cluster_node(self, cluster_enabled: bool) -> None:
        """ping()'s one check of the server: Node's layout spans many slots, so a cluster node
        cannot hold it."""
        if cluster_enabled:
            raise ValidationError("invalidValue", "this Redis is a cluster node: use "
                                  "layout=\"cluster\" (Node's layout spans many slots)")
        self._checked_not_cluster = True

    def _check_server(self) -> Op[None]:
        """Once per manager, at its first call: log what the server's eviction policy may
        remove (eviction.py). A server that refuses INFO (an ACL) is not asked again; one that
        cannot be reached is, at the next call."""
        self._server_checked = True
        try:
            info = yield Command((b"INFO", b"memory"))
        except BackendUnavailable:
            self._server_checked = False
            raise
        except SessionError as exc:
            log.debug("redis-sessions: eviction policy not checked: %s", exc)
            return
        for risk in eviction_risks(info, self.redis_ttl):
            if risk.level != OK:
                log.warning("redis-sessions: Redis %s", risk.message)

    def _app(self, app: str) -> AppContext | ClusterApp:
        """The validated app's context."""
        context = self._apps.get(app) if type(app) is str else None  # (unhashable input)
        if context is None:
            name = validate.app(app)
            if len(self._apps) >= _MAX_APP_CONTEXTS:
                self._apps.clear()
            keys = self.keys
            context = self._apps[name] = (
                ClusterApp(keys, name, self.redis_ttl) if isinstance(keys, ClusterKeys)
                else AppContext(keys, name, self.redis_ttl))
        return context

    def _register(self, app: str, ctx: AppContext | ClusterApp) -> Op[None]:
        """Cluster layout: record the app in the apps set once per process (the wiper's list)."""
        if not ctx.registered:
            assert isinstance(self.keys, ClusterKeys)
            yield Command((b"SADD", self.keys.apps, app), self.keys.apps)
            ctx.registered = True

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
        yield from self._register(app, ctx)
        slot = ctx.of_user(user)
        for _ in range(3):
            token = slot.new_token()
            try:
                yield slot.call(
                    scripts.CREATE, (slot.session_prefix + token, slot.user_prefix + user),
                    (token, user, address, ttl, "1" if no_resave else "0", cap, *self.limits,
                     *changes), self.wait,
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
        slot = ctx.of_token(token)
        if slot is None:
            return None
        keys = slot.token_keys(token)
        session: Session | None = None
        if self.resolution and self._clock is not None:
            # the hot load: one plain read of the key the token's shape names, no write; the
            # function only when it does not suffice (another kind, a rotated token, none)
            if not _anonymous_shaped(token):
                session = self._fresh((yield Commands(((b"HMGET", keys[0], *_FIELDS),),
                                                      keys[0]))[0], False)
            elif anonymous:
                session = self._fresh((yield Commands(
                    ((b"HMGET", keys[1], *_ANONYMOUS_FIELDS),), keys[1]))[0], True)
        if session is None:
            started = time.monotonic()
            reply = yield slot.call(scripts.GET, keys,
                                    (token, "1" if anonymous else "0", self.resolution))
            if reply == _ROTATED:
                return {"id": None, "rotated": True} if rotated else None
            session = self._parse_timed(reply, started)
        if cache is not None and session is not None and session["id"] is not None:
            cache.put(app, token, session, ticket)
        return session

    def _parse_timed(self, reply: object, started: float) -> Session | None:
        """A function's session reply parsed; the server time it carries (read after
        ``started``, a monotonic time taken before the call was sent) bounds the clock."""
        session, now = parse_text(reply)
        if now:
            self._clock = (now - time.monotonic(), now + 1 - started)
        return session

    def _fresh(self, fields: list[Any], anonymous: bool) -> Session | None:
        """The session a hot load read (a user session's ``_FIELDS`` or an anonymous one's),
        when no function would record activity for it now; None when the function must run: no
        session (or none well formed) was read, or its last activity is older than
        ``fresh_limit`` allows by the highest server time the clock admits, or newer than it
        (the server's clock moved: the function's reply sets the estimate again)."""
        clock = self._clock
        assert clock is not None
        mono = time.monotonic()
        now = int(mono + clock[1])  # at least the server's whole seconds now
        if anonymous:
            id_, r, w, no_resave, ip = b"", b"0", b"0", None, None
            d, ttl, la = fields
        else:
            id_, r, w, ttl, d, la, ip, no_resave = fields
            if id_ is None:
                return None
        try:
            last = int(la)
            stored_ttl = int(ttl)
        except (TypeError, ValueError):
            return None
        fixed = no_resave == b"1"
        if not 0 <= now - last <= fresh_limit(stored_ttl, fixed, self.resolution):
            return None
        # idle as reported: by the lower bound of the server's time (at least la's)
        session = _stored(id_, r, w, stored_ttl, last, ip, d, fixed,
                          max(int(mono + clock[0]), last))
        if session is None or (session["id"] is None) != anonymous:
            return None  # (an empty id in a user session's hash: the function decides)
        return session

    def _apply_changes(self, app: str, token: str, changes: Sequence[bytes], ttl: int | None,
                       anonymous: bool, keep_empty: bool, follow: bool) -> Op[Session | None]:
        ctx = self._app(app)
        token = _check_token(token)
        new_ttl = "" if ttl is None else validate.ttl(ttl)
        changes = validate.changes(changes)
        slot = ctx.of_token(token)
        if slot is None:
            return None
        cache = self.cache
        if cache is not None:
            cache.drop(app, token)
        try:
            started = time.monotonic()
            reply = yield slot.call(
                scripts.SET, slot.token_keys(token),
                (token, *self.limits, new_ttl,
                 ("2" if keep_empty else "1") if anonymous else "0", "1" if follow else "0",
                 self.resolution, *changes), self.wait,
            )
        finally:
            if cache is not None:  # again: a get() that read meanwhile may not cache the old
                cache.drop(app, token)
        if reply == _ROTATED or reply == _FORWARDED:
            return {"id": None, "rotated": True, "saved": reply == _FORWARDED}
        return self._parse_timed(reply, started)

    def _create_anonymous(self, app: str, d: Mapping[str, object], ttl: int) -> Op[str]:
        ctx = self._app(app)
        ttl = validate.ttl(ttl)
        if not isinstance(d, Mapping):
            raise ValidationError("invalidValue", "d must be an object")
        changes = core.encode_changes(d)
        for _ in range(3):
            slot = ctx.any()
            token = _anonymous_token(slot.new_token())
            try:
                yield slot.call(scripts.CREATE_ANONYMOUS, (slot.anonymous_prefix + token,),
                                (ttl, *self.limits, *changes), self.wait)
                return token
            except SessionError as exc:
                _retry_on_collision(exc)
        raise BackendError("could not find an unused token")

    def _rotate(self, app: str, token: str | None, user: str, ip: str, ttl: int | None,
                changes: Sequence[bytes], user_agent: str | None = None) -> Op[Session | None]:
        """upgrade (``user`` given: a sign-in, which records its device under a new random
        handle) or regenerate (``user`` "": the device is carried over), in one script."""
        ctx = self._app(app)
        old = "" if token is None else _check_token(token)
        address = validate.ip(ip)
        agent = validate.user_agent(user_agent)
        handle = secrets.token_hex(DEVICE_HANDLE_BYTES) if user else ""
        if user:
            user = validate.user_id(user)
        if ttl is not None:
            ttl = validate.ttl(ttl)
        changes = validate.changes(changes)
        cache = self.cache if old else None
        if cache is not None:
            cache.drop(app, old)
        try:
            return (yield from self._rotate_steps(app, ctx, old, user, address, ttl, changes,
                                                  agent, handle))
        finally:
            if cache is not None:  # again: a get() that read meanwhile may not cache the old
                cache.drop(app, old)

    def _rotate_steps(self, app: str, ctx: AppContext | ClusterApp, old: str, user: str,
                      address: str, ttl: int | None, changes: Sequence[bytes], agent: str,
                      handle: str) -> Op[Session | None]:
        """_rotate's calls (between its two cache invalidations)."""
        source = ctx.of_token(old) if old else None
        if user:
            target = ctx.of_user(user)
        elif source is None:
            return None  # regenerate: a token naming no bucket names no session
        else:
            target = source  # regenerate: same kind, same user, same slot
        base: Arg = ""
        if source is None:
            old = ""
        elif source is not target:
            # Cluster layout, a log-in whose old token lives in another slot than the user's: no
            # script may span both, so the old session is ended first and its data carried over
            # (take.lua); a crash between the two steps loses that data, never a login's safety.
            taken = yield source.call(scripts.TAKE, source.token_keys(old), (old, ROTATION_GRACE),
                                      self.wait)
            base, old = taken or "", ""
        yield from self._register(app, ctx)
        for _ in range(3):
            new = target.new_token()
            if not user and _anonymous_shaped(old):  # regenerate keeps the token's shape
                new = _anonymous_token(new)
            try:
                reply = yield target.call(
                    scripts.ROTATE,
                    (*target.token_keys(old or new), target.session_prefix + new,
                     target.anonymous_prefix + new),
                    (old, new, user, address, "" if ttl is None else ttl, ROTATION_GRACE,
                     *self.limits, base, agent, handle, *changes), self.wait,
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
        slot = ctx.of_token(token)
        if slot is None:
            return 0
        keys = (slot.session_prefix + token, slot.anonymous_prefix + token)
        cache = self.cache
        if cache is not None:
            cache.drop(app, token)
        try:
            return int((yield slot.call(scripts.KILL, keys, (token, "", "0"), self.wait)))
        finally:
            if cache is not None:  # again: a get() that read meanwhile may not cache it back
                cache.drop(app, token)

    def _killsoid(self, app: str, id: str | int, keep: str | None = None) -> Op[int]:
        """Every session of the id, KILL_CHUNK per script (one script for most users); with
        ``keep``, every one but that token in ONE script, and only when ``keep`` is a live
        session of the id (0 otherwise)."""
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        kept = "" if keep is None else _check_token(keep)
        slot = ctx.of_user(user)
        total = 0
        with self._flushing():
            if kept:
                killed, _ = yield slot.call(scripts.KILLSOID, (slot.user_prefix + user,),
                                            (user, KILL_CHUNK, kept), self.wait)
                return int(killed)
            for _ in range(1_000_000):  # bounded: each call removes what it picked
                killed, left = yield slot.call(scripts.KILLSOID, (slot.user_prefix + user,),
                                               (user, KILL_CHUNK, ""), self.wait)
                total += int(killed)
                if not int(left):
                    break
        return total

    def _killall(self, app: str) -> Op[int]:
        ctx = self._app(app)
        with self._flushing():
            return (yield from self._fan_out(ctx.every(), scripts.KILLALL, self.wait))

    @contextmanager
    def _flushing(self) -> Iterator[None]:
        """Around the kills of many sessions: the local cache is flushed before, and again when
        they returned (or failed), so a get() that read Redis meanwhile cannot cache a session
        after its kill returned. (One session's writes drop its entry the same way.)"""
        cache = self.cache
        if cache is not None:
            cache.flush()
        try:
            yield
        finally:
            if cache is not None:
                cache.flush()

    def _fan_out(self, contexts: Sequence[AppContext], script: scripts.Script,
                 wait: Wait | None = None) -> Op[int]:
        """Run a ``{done, seen}`` chunk script (killall, wipe) on every context until each saw
        less than a chunk; the calls of one pass go pipelined (per master in a cluster)."""
        total = 0
        pending = list(contexts)
        while pending:
            calls = [ctx.call(script, (), (KILL_CHUNK,)) for ctx in pending]
            replies = yield Calls(script, [(c.keys, c.args) for c in calls], wait)
            total += sum(int(reply[0]) for reply in replies)
            pending = [ctx for ctx, reply in zip(pending, replies) if int(reply[1]) >= KILL_CHUNK]
        return total

    def _devices(self, app: str, id: str | int, current: str | None, only_current: bool
                 ) -> Op[list[Session]]:
        """The live sessions of the id as device records (devices.lua), PAGE per script; with
        ``only_current``, the device of ``current`` alone ([] when it is no session of the id).
        """
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        token = "" if current is None else _check_token(current)
        slot = ctx.of_user(user)
        key = slot.user_prefix + user
        records: dict[str, Session] = {}  # by handle: SSCAN may give a session twice
        cursor: Arg = "0"
        for _ in range(1_000_000):  # bounded: SSCAN ends
            reply = yield slot.call(scripts.DEVICES, (key,),
                                    (cursor, PAGE, token, "1" if only_current else "0"))
            cursor = reply[0]
            flat = reply[1:]
            for i in range(0, len(flat), 6):
                handle = _text(flat[i])
                records[handle] = {
                    "handle": handle, "current": flat[i + 1] == 1, "ip": _text(flat[i + 2]),
                    "last_active": int(flat[i + 3]),
                    "signed_in": None if flat[i + 4] is None else int(flat[i + 4]),
                    "user_agent": None if flat[i + 5] is None else _text(flat[i + 5]),
                }
            if cursor in (b"0", "0"):
                break
        return list(records.values())

    def _killdevice(self, app: str, id: str | int, handle: str, by: str | None) -> Op[int]:
        """End the session of the id whose device handle is ``handle`` (killdevice.lua, page by
        page until found): DEVICE_ENDED, DEVICE_ENDED_SELF (it was ``by``), or 0 (no such
        device, or ``by`` is not a live session of the id: nothing ended)."""
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        handle = validate.device_handle(handle)
        requester = "" if by is None else _check_token(by)
        slot = ctx.of_user(user)
        key = slot.user_prefix + user
        cursor: Arg = "0"
        with self._flushing():
            for _ in range(1_000_000):  # bounded: SSCAN ends
                status, cursor = yield slot.call(scripts.KILLDEVICE, (key,),
                                                 (user, cursor, handle, PAGE, requester),
                                                 self.wait)
                if int(status) != 0 or cursor in (b"0", "0"):
                    return max(int(status), 0)
        return 0

    def _soid_listing(self, app: str, id: str | int, page: int = PAGE) -> SoidListing:
        """The state of a paged soid (SSCAN over the user's token set)."""
        ctx = self._app(app)
        user = validate.user_id(id, max_length=None)
        return SoidListing(ctx.of_user(user), user, _check_page(page))

    def _soid_next(self, listing: SoidListing) -> Op[list[Session]]:
        """The sessions of the next pages not given before ([] when the listing is over); an
        empty SSCAN page is passed over."""
        slot, seen = listing.ctx, listing.seen
        while listing.cursor is not None:
            reply = yield slot.call(scripts.SOID, (slot.user_prefix + listing.user,),
                                    (listing.cursor, listing.page))
            following = reply[0]
            listing.cursor = None if following in (b"0", "0") else following
            sessions = [s for s in _sessions_with_tokens(reply[1:]) if s["token"] not in seen]
            if sessions:
                seen.update(s["token"] for s in sessions)
                return sessions
        return []

    def _soid(self, app: str, id: str | int) -> Op[list[Session]]:
        listing = self._soid_listing(app, id)
        out: list[Session] = []
        while sessions := (yield from self._soid_next(listing)):
            out += sessions
        return out

    def _soapp_listing(self, app: str, dt: int, page: int = PAGE) -> SoappListing:
        """The state of a paged soapp (every bucket's index merged, newest first)."""
        ctx = self._app(app)
        return SoappListing(ctx.every(), validate.dt(dt), _check_page(page))

    def _soapp_next(self, listing: SoappListing) -> Op[list[Session]]:
        """The next page of a soapp listing ([] when it is over)."""
        dt, size, heap = listing.dt, listing.stream_page(), listing.heap
        streams = listing.streams
        if not listing.started:
            replies = yield Calls(scripts.SOAPP,
                                  [(c.keys, c.args) for c in (s.call(dt, size) for s in streams)])
            for i, (stream, reply) in enumerate(zip(streams, replies)):
                stream.fill(reply)
                if stream.items:
                    heap.append((-stream.items[-1][0], i))
            heapq.heapify(heap)
            listing.started = True
        out: list[Session] = []
        while heap and len(out) < listing.page:
            _, i = heapq.heappop(heap)
            stream = streams[i]
            out.append(stream.items.pop()[1])
            if not stream.items and not stream.done:
                stream.fill((yield stream.call(dt, size)))
            if stream.items:
                heapq.heappush(heap, (-stream.items[-1][0], i))
        return out

    def _soapp(self, app: str, dt: int) -> Op[list[Session]]:
        listing = self._soapp_listing(app, dt)
        out: list[Session] = []
        while sessions := (yield from self._soapp_next(listing)):
            out += sessions
        return out

    def _activity(self, app: str, dt: int) -> Op[int]:
        """Exact in the cluster layout too: a user id lives in one bucket."""
        ctx = self._app(app)
        calls = [c.call(scripts.ACTIVITY, (), (validate.dt(dt),)) for c in ctx.every()]
        replies = yield Calls(scripts.ACTIVITY, [(c.keys, c.args) for c in calls])
        return sum(int(n) for n in replies)

    def _wipe(self) -> Op[int]:
        """Remove expired sessions in bounded steps; each is re-checked inside its removal
        script, so many processes may wipe at once and a session refreshed meanwhile survives."""
        if isinstance(self.keys, ClusterKeys):
            return (yield from self._wipe_buckets(self.keys))
        total = 0
        expiry = self.keys.expiry
        for _ in range(10_000):  # bounded: each pass removes or re-scores what it saw
            now = int((yield Command((b"TIME",)))[0])
            members = yield Command(
                (b"ZRANGEBYSCORE", expiry, b"-inf", f"({now}", b"LIMIT", 0, CHUNK), expiry
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
                assert isinstance(ctx, AppContext)
                call = ctx.call(scripts.KILL, (ctx.session_prefix + member.token,),
                                (member.token, member.id, "1"))
                by_app.setdefault(member.app, []).append((call.keys, call.args))
            if stray:
                yield Command((b"ZREM", expiry, *stray), expiry)
            for calls in by_app.values():
                total += sum(int(n) for n in (yield Calls(scripts.KILL, calls)))
            if len(members) < CHUNK:
                break
        return total

    def _wipe_buckets(self, keys: ClusterKeys) -> Op[int]:
        """Cluster layout: every bucket of every app in the apps set, KILL_CHUNK per script."""
        total = 0
        for raw in (yield Command((b"SMEMBERS", keys.apps), keys.apps)):
            app = raw.decode() if isinstance(raw, bytes) else raw
            try:
                ctx = self._app(app)
            except ValidationError:
                continue
            total += yield from self._fan_out(ctx.every(), scripts.WIPE)
        return total
