"""``RedisSessions``: Node redis-sessions' API over one Redis, race-free and one round trip each.

create/get/set/kill run one Lua script each (scripts/*.lua): atomic, so concurrent set() calls
never lose each other's keys and nothing recreates a killed or expired session. The stored layout
is Node's (keys.py), so Node and Python processes share sessions. The operations themselves live
in operations.py, free of I/O; this class drives them through the blocking wire. This module knows
nothing of HTTP; the web layer calls it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from . import core, validate
from ._constants import (
    DEFAULT_CACHE_MAX,
    DEFAULT_NAMESPACE,
    DEFAULT_ACTIVITY_RESOLUTION,
    DEFAULT_REPLICAS,
    DEFAULT_TTL,
    DEFAULT_WAIT_MS,
    DEFAULT_WIPE,
    MAX_DATA_BYTES,
    MAX_DATA_KEYS,
    MIN_TTL,
)
from .cache import LocalCache
from .cluster_wire import ClusterWire, not_a_cluster
from .errors import SessionError, ValidationError
from .operations import PAGE, Call, Calls, Commands, Op, Operations, Session, T, replication_wait
from .wiper import Wiper
from .wire import Wire, backend_error

__all__ = ["RedisSessions", "make_client"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
# Timeouts for clients built here (a URL or REDIS_URL); a client passed in keeps its own.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


def make_client(redis_: redis.Redis | RedisCluster | str | None, layout: str = "node"
                ) -> tuple[redis.Redis | RedisCluster, bool]:
    """The client to use and whether we own it (built it, so close() closes it). A URL with
    ``layout="cluster"`` builds a RedisCluster (which asks the node for the slot map now)."""
    if isinstance(redis_, (redis.Redis, RedisCluster)):
        return redis_, False
    url = redis_ or os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise TypeError("redis must be a redis.Redis or RedisCluster client, a URL string or None")
    if layout == "cluster":
        try:
            cluster = RedisCluster.from_url(
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
            )
        except RedisClusterException as exc:  # e.g. "Cluster mode is not enabled on this node"
            raise not_a_cluster(exc) from exc
        except redis.RedisError as exc:
            raise backend_error(exc) from exc
        return cluster, True
    client = redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    return client, True


class RedisSessions(Operations):
    """Sessions of many apps and many ids per app, in one Redis namespace.

    ``redis`` is a redis.Redis client, a URL, or None (``REDIS_URL``, else the local default).
    ``wipe`` is the wiper's period in seconds (0 disables it, otherwise at least 10);
    ``cache_time`` > 0 turns on the local cache of get() replies, for that many seconds.
    ``redis_ttl`` keeps a Redis TTL on every session key so memory is reclaimed even when no
    wiper runs; turn it off when Node processes share the sessions (Node never refreshes it).

    ``layout="cluster"`` (ours, Node cannot read it; keys.py) keeps every key of a user in one
    Redis Cluster slot; ``redis`` may then be a ``RedisCluster`` (or a URL of one node). The
    default, Node's layout, refuses a cluster client. ``durability="replicated"`` makes every
    write of session data or logout (create, create_anonymous, set/apply_changes, upgrade,
    regenerate, kill/destroy, killsoid, killall; not get/load nor the wipe) wait until
    ``replicas`` replicas acknowledged it (WAIT, at most ``timeout_ms``), else raise
    ``ReplicationTimeout``.

    ``activity_resolution`` (seconds, default 10; 0 = Node's exact rules): a session used again
    within that long (at most a tenth of its ttl) is read with plain commands that write
    nothing, and its activity (``la``, ``idle``, the indexes, the Redis TTL, Node's ``r``) is
    recorded at most once per that long; docs/manager.md says exactly what changes.
    """

    def __init__(
        self,
        redis: redis.Redis | RedisCluster | str | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        wipe: int = DEFAULT_WIPE,
        cache_time: float = 0,
        cache_max: int = DEFAULT_CACHE_MAX,
        redis_ttl: bool = True,
        max_data_keys: int = MAX_DATA_KEYS,
        max_data_bytes: int = MAX_DATA_BYTES,
        layout: str = "node",
        durability: str | None = None,
        replicas: int = DEFAULT_REPLICAS,
        timeout_ms: int = DEFAULT_WAIT_MS,
        activity_resolution: int = DEFAULT_ACTIVITY_RESOLUTION,
    ) -> None:
        super().__init__(namespace, redis_ttl, max_data_keys, max_data_bytes, layout,
                         replication_wait(durability, replicas, timeout_ms),
                         activity_resolution)
        if wipe and (not isinstance(wipe, int) or wipe < MIN_TTL):
            raise ValidationError("invalidValue", f"wipe must be 0 or an integer >= {MIN_TTL}")
        if isinstance(redis, RedisCluster) and layout != "cluster":
            raise ValidationError("invalidValue", "a RedisCluster client needs layout=\"cluster\" "
                                  "(Node's layout puts an app's keys in many slots)")
        # what in_namespace() builds another manager with
        self.options: dict[str, Any] = {
            "wipe": wipe, "cache_time": cache_time, "cache_max": cache_max,
            "redis_ttl": redis_ttl, "max_data_keys": max_data_keys,
            "max_data_bytes": max_data_bytes, "layout": layout, "durability": durability,
            "replicas": replicas, "timeout_ms": timeout_ms,
            "activity_resolution": activity_resolution}
        self.client, self._owns_client = make_client(redis, layout)
        self._wire: Any
        if isinstance(self.client, RedisCluster):
            self._wire = ClusterWire(self.client)
        else:
            self._wire = Wire(self.client)
        self.cache = (
            LocalCache(self.client, self.keys.cache_channel, cache_time, cache_max)
            if cache_time > 0
            else None
        )
        self.wiper = Wiper(self.wipe, wipe) if wipe else None

    def _drive(self, op: Op[T]) -> T:
        """Run one operation: each Redis call it yields goes through the wire; an error is
        thrown back into it (where a token collision is retried)."""
        if self.wiper is not None:
            self.wiper.ensure_started()
        wire = self._wire
        try:
            step = next(op)
            if not self._server_checked:
                self._drive(self._check_server())
            while True:
                try:
                    if isinstance(step, Call):
                        reply: Any = wire.run(step.script, step.keys, step.args, step.wait)
                    elif isinstance(step, Calls):
                        reply = wire.run_many(step.script, step.calls, step.wait)
                    elif isinstance(step, Commands):
                        reply = wire.commands(step.commands, step.key)
                    else:
                        reply = wire.command(step.args, step.key)
                except SessionError as exc:
                    step = op.throw(exc)
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

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
        killed in the same atomic step (expired ones first, and they do not count).
        """
        return self._drive(self._create(app, id, ip, ttl, d, no_resave, max_sessions))

    def get(self, app: str, token: str) -> Session | None:
        """The session of ``token`` (recording the activity, to the activity resolution), or
        None when there is none."""
        return self._drive(self._get(app, token, False, False))

    def load(self, app: str, token: str, anonymous: bool = True) -> Session | None:
        """What the web layer loads for a cookie, in one round trip (two when the session's
        activity is recorded after the resolution): a user session (as get()), an anonymous one
        (``id`` None; its Redis TTL renewed to its ttl, once per activity resolution) unless
        ``anonymous`` is False, ``{"id": None, "rotated": True}`` for a token upgrade/regenerate
        replaced less than ROTATION_GRACE seconds ago, or None."""
        return self._drive(self._get(app, token, anonymous, True))

    def set(self, app: str, token: str, d: Mapping[str, object]) -> Session | None:
        """Merge ``d`` into the session's data (None values delete keys), atomically.

        Returns the updated session, or None when the session does not exist (nothing is
        recreated).
        """
        return self.apply_changes(app, token, core.encode_changes(validate.data(d)))

    def apply_changes(
        self,
        app: str,
        token: str,
        changes: Sequence[bytes],
        *,
        ttl: int | None = None,
        anonymous: bool = False,
        keep_empty: bool = False,
        follow: bool = False,
    ) -> Session | None:
        """set() for a change set already encoded by ``core.diff``/``core.encode_changes``.

        ``ttl`` gives the session a new ttl from now. With ``anonymous`` an anonymous session is
        updated too (deleted when its data becomes empty, unless ``keep_empty``). With
        ``follow``, a token rotated moments ago gives ``{"id": None, "rotated": True, "saved":
        bool}``: saved when the change went to the same user's new session (never for a login,
        whose old anonymous token must not write into the user's session).
        """
        return self._drive(
            self._apply_changes(app, token, changes, ttl, anonymous, keep_empty, follow)
        )

    def create_anonymous(self, app: str, d: Mapping[str, object], ttl: int = DEFAULT_TTL) -> str:
        """Store an anonymous session (a visitor's first write); returns its token.

        It lives ``ttl`` seconds after its last write or recorded load (a Redis TTL, renewed
        by a load once per activity resolution: no wiper needed) and
        appears in no index: soid, soapp, activity and Node never see it. ``d`` may be empty.
        """
        return self._drive(self._create_anonymous(app, d, ttl))

    def upgrade(
        self,
        app: str,
        token: str | None,
        id: str | int,
        ip: str,
        ttl: int = DEFAULT_TTL,
        changes: Sequence[bytes] = (),
        *,
        user_agent: str | None = None,
    ) -> Session:
        """Log ``id`` in, atomically: a new user session (returned with its ``token``) holding
        the data of ``token``'s session when it is anonymous or the same user's, plus
        ``changes``; the old session is deleted (a session of another user with its data).
        The sign-in records its device: a new handle, the time, ``user_agent`` (cut to 512
        characters) where Node never looks (see ``devices``)."""
        session = self._drive(self._rotate(app, token, validate.user_id(id), ip, ttl, changes,
                                           user_agent))
        assert session is not None
        return session

    def regenerate(self, app: str, token: str, ip: str, changes: Sequence[bytes] = ()
                   ) -> Session | None:
        """The same session under a new token (data copied inside Redis, expiry kept, plus
        ``changes``); the old token is deleted. None when there is no such session."""
        return self._drive(self._rotate(app, token, "", ip, None, changes))

    def kill(self, app: str, token: str) -> int:
        """Remove one session (a user's or an anonymous one); returns 1, or 0 when it did not
        exist."""
        return self._drive(self._kill(app, token))

    def killsoid(self, app: str, id: str | int, keep: str | None = None) -> int:
        """Remove every session of user ``id``; returns how many there were. With ``keep`` (a
        token), every session but that one, in one atomic script, and only when ``keep`` is a
        live session of ``id`` (a device that was logged out cannot log the others out: 0)."""
        return self._drive(self._killsoid(app, id, keep))

    def devices(self, app: str, id: str | int, current: str | None = None, *,
                only_current: bool = False) -> list[Session]:
        """The devices of user ``id``: one record per live session, ``{"handle", "current",
        "ip", "last_active", "signed_in", "user_agent"}`` (times in unix seconds; ``signed_in``
        and ``user_agent`` None when unknown, as for a session Node created). ``current`` (a
        token) marks that session's device (``only_current``: its record alone, [] when it is
        no live session of ``id``). No token is in a record: ``handle`` names the device
        (``redis_sessions.devices.Device.from_record`` makes a typed ``Device``)."""
        return self._drive(self._devices(app, id, current, only_current))

    def killdevice(self, app: str, id: str | int, handle: str, *, by: str | None = None) -> int:
        """End the session of user ``id`` whose device handle is ``handle``: 1, or 2 when that
        session was ``by`` itself; 0 when ``id`` has no such device, or when ``by`` (the
        requesting session's token) is not a live session of ``id`` (nothing is ended then)."""
        return self._drive(self._killdevice(app, id, handle, by))

    def killall(self, app: str) -> int:
        """Remove every session of ``app`` (in bounded steps); returns how many there were."""
        return self._drive(self._killall(app))

    def soid(self, app: str, id: str | int) -> list[Session]:
        """The live sessions of user ``id``, each with its ``token`` (activity not recorded)."""
        return self._drive(self._soid(app, id))

    def soapp(self, app: str, dt: int) -> list[Session]:
        """The live sessions of ``app`` active within ``dt`` seconds, newest first."""
        return self._drive(self._soapp(app, dt))

    def iter_soapp(self, app: str, dt: int, page: int = PAGE) -> Iterator[Session]:
        """soapp() one page at a time (each page one bounded script per index read), newest
        first: for admin listings of any size."""
        listing = self._soapp_listing(app, dt, page)
        while sessions := self._drive(self._soapp_next(listing)):
            yield from sessions

    def iter_soid(self, app: str, id: str | int, page: int = PAGE) -> Iterator[Session]:
        """soid() one page at a time (SSCAN), each session once."""
        listing = self._soid_listing(app, id, page)
        while sessions := self._drive(self._soid_next(listing)):
            yield from sessions

    def activity(self, app: str, dt: int) -> int:
        """How many distinct user ids of ``app`` were active within ``dt`` seconds."""
        return self._drive(self._activity(app, dt))

    def wipe(self) -> int:
        """Remove the expired sessions of every app now; returns how many were removed
        (sessions whose hash Redis already expired included).

        Works in chunks of ``CHUNK`` and re-checks each session inside its removal script, so
        many processes may wipe at once and a session refreshed meanwhile survives.
        """
        return self._drive(self._wipe())

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            alive = bool(self.client.ping())
            if not self._checked_not_cluster:
                self._refuse_cluster_node(bool(self.client.info("cluster").get("cluster_enabled")))
            return alive
        except redis.RedisError as exc:
            raise backend_error(exc) from exc

    def in_namespace(self, namespace: str) -> RedisSessions:
        """A manager over the same client, with the same options, in another namespace (the
        sessions of a test run, apart from the developer's; see django.py and flask.py)."""
        return RedisSessions(self.client, namespace=namespace, **self.options)

    def close(self) -> None:
        """Stop the wiper and the cache listener, and close the client when it was built here."""
        if self.wiper is not None:
            self.wiper.stop()
        if self.cache is not None:
            self.cache.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RedisSessions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
