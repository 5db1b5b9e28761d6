"""``AsyncRedisSessions``: the manager's API as coroutines, for asyncio apps (ASGI).

It drives the very generators of operations.py (validation, keys, scripts, reply parsing exist
once) over the asyncio wire (async_wire.py: one pipelined connection per event loop), as
``RedisSessions`` drives them over the blocking one.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
import redis.cluster
import redis.sentinel
from redis.asyncio import RedisCluster as AsyncRedisCluster
from redis.client import PubSub

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
from .async_cluster_wire import AsyncClusterWire
from .async_wire import AsyncWire
from .cache import LocalCache
from .errors import SessionError, ValidationError
from .manager import CONNECT_TIMEOUT, DEFAULT_URL, SOCKET_TIMEOUT
from .operations import PAGE, Call, Calls, Commands, Op, Operations, Session, T, replication_wait

if TYPE_CHECKING:
    from .manager import RedisSessions

__all__ = ["AsyncRedisSessions"]

AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster


def _async_client(redis_: Any, layout: str) -> tuple[AsyncClient, bool]:
    """The async client to use and whether we own it (built it from a URL). A URL with
    ``layout="cluster"`` builds a ``redis.asyncio.RedisCluster`` (it loads the slot map on
    first use: a server that is no cluster node is refused then, by ``not_a_cluster``)."""
    if isinstance(redis_, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
        return redis_, False
    if isinstance(redis_, (redis.Redis, redis.cluster.RedisCluster)):
        raise TypeError("AsyncRedisSessions needs a redis.asyncio client (Redis, a Sentinel "
                        "master's, or RedisCluster) or a URL")
    url = redis_ or os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise TypeError("redis must be a redis.asyncio.Redis or RedisCluster client, a URL "
                        "string or None")
    cls = redis.asyncio.RedisCluster if layout == "cluster" else redis.asyncio.Redis
    client = cls.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    return client, True


# an async client's settings that are async objects (or the async pool itself): never passed on
_ASYNC_ONLY = frozenset({"connection_pool", "retry", "redis_connect_func", "event_dispatcher",
                         "maint_notifications_config", "oss_cluster_maint_notifications_handler"})


def _blocking_kwargs(kwargs: Mapping[str, Any], connection_class: type | None = None
                     ) -> dict[str, Any]:
    """An async connection's settings (address, auth, db, TLS, timeouts) as a blocking
    ``redis.Redis``'s keyword arguments."""
    out = dict(kwargs)
    if connection_class is not None:
        if issubclass(connection_class, redis.asyncio.UnixDomainSocketConnection):
            out["unix_socket_path"] = out.pop("path", None)
        if issubclass(connection_class, redis.asyncio.SSLConnection):
            out["ssl"] = True
    accepted = inspect.signature(redis.Redis).parameters
    return {k: v for k, v in out.items() if k in accepted and k not in _ASYNC_ONLY}


class _BlockingTwin:
    """A blocking client to the async client's Redis (one server, the Sentinel master, or the
    cluster) for the cache's invalidation listener thread, as ``RedisSessions`` lends its own.
    Built by the first ``pubsub()``, in that thread: the async constructor does no I/O, and a
    Redis down at start is the listener's to retry."""

    def __init__(self, client: AsyncClient) -> None:
        self._async = client
        self._lock = threading.Lock()
        self._client: redis.Redis | redis.cluster.RedisCluster | None = None
        self._sentinel: redis.sentinel.Sentinel | None = None
        self._closed = False

    def pubsub(self, **kwargs: Any) -> PubSub:
        with self._lock:
            if self._closed:
                raise redis.ConnectionError("the session manager was closed")
            if self._client is None:
                self._client = self._build()
            client = self._client
        return client.pubsub(**kwargs)

    def _build(self) -> redis.Redis | redis.cluster.RedisCluster:
        source = self._async
        if isinstance(source, redis.asyncio.RedisCluster):
            # from every node it knows; PUBLISH reaches every node of a cluster, and redis-py's
            # ClusterPubSub subscribes on one, as RedisSessions' cache does with a RedisCluster
            nodes = source.nodes_manager
            known = {n.name: n for n in (*nodes.startup_nodes.values(),
                                         *nodes.nodes_cache.values())}
            kwargs = nodes.connection_kwargs
            return redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(n.host, n.port) for n in known.values()],
                address_remap=nodes.address_remap,
                **_blocking_kwargs(kwargs, kwargs.get("connection_class")))
        pool = source.connection_pool
        settings = _blocking_kwargs(pool.connection_kwargs, pool.connection_class)
        if isinstance(pool, redis.asyncio.SentinelConnectionPool):
            # the same sentinels and service: after a failover the subscription reconnects to
            # the new master, as a blocking Sentinel master client's does
            manager = pool.sentinel_manager
            self._sentinel = redis.sentinel.Sentinel(
                [(s.connection_pool.connection_kwargs["host"],
                  s.connection_pool.connection_kwargs["port"]) for s in manager.sentinels],
                min_other_sentinels=manager.min_other_sentinels,
                sentinel_kwargs=_blocking_kwargs(manager.sentinel_kwargs),
                force_master_ip=getattr(manager, "_force_master_ip", None))
            return self._sentinel.master_for(pool.service_name, **settings)
        return redis.Redis(**settings)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            sentinel, self._sentinel = self._sentinel, None
        if client is not None:
            client.close()
        if sentinel is not None:
            sentinel.close()


class AsyncRedisSessions(Operations):
    """``RedisSessions`` for asyncio: the same API, options and errors, as coroutines.

    ``redis`` is a ``redis.asyncio.Redis`` client (a Sentinel master's too), a
    ``redis.asyncio.RedisCluster`` (with ``layout="cluster"``), a URL (with ``layout="cluster"``
    a cluster node's: a server that is no cluster node is refused with ``BackendUnavailable`` at
    the first call, as ``RedisSessions`` refuses it at construction; for the cluster layout on
    one server pass a ``redis.asyncio.Redis``), or None (``REDIS_URL``, else the local default).
    Calls on one event loop share one pipelined connection (per cluster node); a reply slower
    than the client's ``socket_timeout`` (5 s for a client built here) raises
    ``BackendUnavailable``. ``wipe`` runs as a task of the loop that used the manager last.
    ``cache_time`` > 0 uses the same local cache as ``RedisSessions``; its invalidation listener
    is a thread with a blocking client to the same Redis (the Sentinel master, the cluster).
    ``durability="replicated"`` (``replicas``, ``timeout_ms``) waits for replicas as
    ``RedisSessions`` does, else raises ``ReplicationTimeout``. ``activity_resolution`` as
    ``RedisSessions``'.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis | redis.asyncio.RedisCluster | str | None = None,
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
        if isinstance(redis, AsyncRedisCluster) and layout != "cluster":
            raise ValidationError("invalidValue", "a RedisCluster client needs layout=\"cluster\" "
                                  "(Node's layout puts an app's keys in many slots)")
        self.client, self._owns_client = _async_client(redis, layout)
        self._wire: AsyncWire | AsyncClusterWire
        if isinstance(self.client, AsyncRedisCluster):
            self._wire = AsyncClusterWire(self.client, self._owns_client)
        else:
            self._wire = AsyncWire(self.client)
        self._twin = _BlockingTwin(self.client) if cache_time > 0 else None
        if self._twin is not None:
            self.cache = LocalCache(self._twin, self.keys.cache_channel, cache_time, cache_max)
        self.wipe_interval = wipe
        self._wiper: asyncio.Task[None] | None = None

    @classmethod
    def beside(cls, manager: RedisSessions) -> AsyncRedisSessions | None:
        """An async manager for the Redis of a blocking ``manager`` (its address, auth, db,
        TLS and timeouts), with its namespace and options, and its local cache shared (so a
        write by either is never served stale from it); its wiper is the blocking one's. None
        for a client whose settings it cannot mirror (Sentinel, Redis Cluster): build one."""
        client = manager.client
        if not isinstance(client, redis.Redis):
            return None
        pool = client.connection_pool
        if isinstance(pool, redis.sentinel.SentinelConnectionPool):
            return None
        settings = dict(pool.connection_kwargs)
        if issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
            settings["unix_socket_path"] = settings.pop("path", None)
        if issubclass(pool.connection_class, redis.SSLConnection):
            settings["ssl"] = True
        accepted = inspect.signature(redis.asyncio.Redis).parameters
        twin = cls(redis.asyncio.Redis(**{k: v for k, v in settings.items() if k in accepted}),
                   namespace=manager.namespace,
                   **{**manager.options, "wipe": 0, "cache_time": 0})
        twin._owns_client = True
        twin.cache = manager.cache
        return twin

    async def _drive(self, op: Op[T]) -> T:
        """Run one operation: each Redis call it yields is awaited on the wire; an error is
        thrown back into it (where a token collision is retried)."""
        if self.wipe_interval:
            self._ensure_wiper()
        wire = self._wire
        try:
            step = next(op)
            if not self._server_checked:
                await self._drive(self._check_server())
            while True:
                try:
                    if isinstance(step, Call):
                        reply: Any = await wire.run(step.script, step.keys, step.args, step.wait)
                    elif isinstance(step, Calls):
                        reply = await wire.run_many(step.script, step.calls, step.wait)
                    elif isinstance(step, Commands):
                        reply = await wire.commands(step.commands, step.key)
                    else:
                        reply = await wire.command(step.args, step.key)
                except SessionError as exc:
                    step = op.throw(exc)
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _ensure_wiper(self) -> None:
        wiper = self._wiper
        loop = asyncio.get_running_loop()
        if wiper is None or wiper.done() or wiper.get_loop() is not loop:
            self._wiper = loop.create_task(self._wipe_periodically())

    async def _wipe_periodically(self) -> None:
        from .wiper import log

        while True:
            await asyncio.sleep(self.wipe_interval)
            try:
                removed = await self.wipe()
                if removed:
                    log.debug("redis-sessions: wiped %d expired sessions", removed)
            except SessionError as exc:  # the next round tries again
                log.warning("redis-sessions: wipe failed: %s", exc)

    # -- the redis-sessions API (see RedisSessions for each method's contract) -------------------

    async def create(self, app: str, id: str | int, ip: str, ttl: int = DEFAULT_TTL,
                     d: Mapping[str, object] | None = None, no_resave: bool = False,
                     max_sessions: int | None = None) -> str:
        """Create a session for user ``id``; returns its token."""
        return await self._drive(self._create(app, id, ip, ttl, d, no_resave, max_sessions))

    async def get(self, app: str, token: str) -> Session | None:
        """The session of ``token`` (recording the activity), or None when there is none."""
        return await self._drive(self._get(app, token, False, False))

    async def load(self, app: str, token: str, anonymous: bool = True) -> Session | None:
        """What the web layer loads for a cookie (``RedisSessions.load``)."""
        return await self._drive(self._get(app, token, anonymous, True))

    async def set(self, app: str, token: str, d: Mapping[str, object]) -> Session | None:
        """Merge ``d`` into the session's data (None values delete keys), atomically."""
        return await self.apply_changes(app, token, core.encode_changes(validate.data(d)))

    async def apply_changes(self, app: str, token: str, changes: Sequence[bytes], *,
                            ttl: int | None = None, anonymous: bool = False,
                            keep_empty: bool = False, follow: bool = False) -> Session | None:
        """set() for an encoded change set (``RedisSessions.apply_changes``)."""
        return await self._drive(
            self._apply_changes(app, token, changes, ttl, anonymous, keep_empty, follow)
        )

    async def create_anonymous(self, app: str, d: Mapping[str, object],
                               ttl: int = DEFAULT_TTL) -> str:
        """Store an anonymous session; returns its token."""
        return await self._drive(self._create_anonymous(app, d, ttl))

    async def upgrade(self, app: str, token: str | None, id: str | int, ip: str,
                      ttl: int = DEFAULT_TTL, changes: Sequence[bytes] = (), *,
                      user_agent: str | None = None) -> Session:
        """Log ``id`` in, atomically, under a new token, recording the device
        (``RedisSessions.upgrade``)."""
        op = self._rotate(app, token, validate.user_id(id), ip, ttl, changes, user_agent)
        session = await self._drive(op)
        assert session is not None
        return session

    async def regenerate(self, app: str, token: str, ip: str, changes: Sequence[bytes] = ()
                         ) -> Session | None:
        """The same session under a new token; None when there is no such session."""
        return await self._drive(self._rotate(app, token, "", ip, None, changes))

    async def kill(self, app: str, token: str) -> int:
        """Remove one session; returns 1, or 0 when it did not exist."""
        return await self._drive(self._kill(app, token))

    async def killsoid(self, app: str, id: str | int, keep: str | None = None) -> int:
        """Remove every session of user ``id`` (but ``keep``, in one script:
        ``RedisSessions.killsoid``); returns how many there were."""
        return await self._drive(self._killsoid(app, id, keep))

    async def devices(self, app: str, id: str | int, current: str | None = None, *,
                      only_current: bool = False) -> list[Session]:
        """The devices of user ``id`` as records (``RedisSessions.devices``)."""
        return await self._drive(self._devices(app, id, current, only_current))

    async def killdevice(self, app: str, id: str | int, handle: str, *,
                         by: str | None = None) -> int:
        """End the session of ``id`` whose device handle is ``handle``
        (``RedisSessions.killdevice``)."""
        return await self._drive(self._killdevice(app, id, handle, by))

    async def killall(self, app: str) -> int:
        """Remove every session of ``app``; returns how many there were."""
        return await self._drive(self._killall(app))

    async def soid(self, app: str, id: str | int) -> list[Session]:
        """The live sessions of user ``id``, each with its ``token``."""
        return await self._drive(self._soid(app, id))

    async def soapp(self, app: str, dt: int) -> list[Session]:
        """The live sessions of ``app`` active within ``dt`` seconds, newest first."""
        return await self._drive(self._soapp(app, dt))

    async def iter_soapp(self, app: str, dt: int, page: int = PAGE) -> AsyncIterator[Session]:
        """soapp() one page at a time, newest first (``RedisSessions.iter_soapp``):
        ``async for session in rs.iter_soapp(app, dt)``."""
        listing = self._soapp_listing(app, dt, page)
        while sessions := await self._drive(self._soapp_next(listing)):
            for session in sessions:
                yield session

    async def iter_soid(self, app: str, id: str | int, page: int = PAGE
                        ) -> AsyncIterator[Session]:
        """soid() one page at a time (SSCAN), each session once (``RedisSessions.iter_soid``)."""
        listing = self._soid_listing(app, id, page)
        while sessions := await self._drive(self._soid_next(listing)):
            for session in sessions:
                yield session

    async def activity(self, app: str, dt: int) -> int:
        """How many distinct user ids of ``app`` were active within ``dt`` seconds."""
        return await self._drive(self._activity(app, dt))

    async def wipe(self) -> int:
        """Remove the expired sessions of every app now; returns how many were removed."""
        return await self._drive(self._wipe())

    async def ping(self) -> bool:
        """True when Redis answers (the first time, Node's layout on a cluster node is refused)."""
        alive = await self._wire.command((b"PING",)) in (b"PONG", "PONG")
        if not self._checked_not_cluster:
            info = await self._wire.command((b"INFO", b"cluster"))
            text = info.decode() if isinstance(info, bytes) else str(info)
            self._refuse_cluster_node("cluster_enabled:1" in text)
        return alive

    async def close(self) -> None:
        """Stop the wiper and the cache listener and close the connections."""
        if self._wiper is not None:
            if not self._wiper.get_loop().is_closed():
                self._wiper.cancel()
            self._wiper = None
        if self._twin is not None:  # the cache is this manager's own (not one it shares)
            if self.cache is not None:
                self.cache.close()
            self._twin.close()
        self._wire.close()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisSessions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

