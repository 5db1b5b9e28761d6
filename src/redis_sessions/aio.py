"""``AsyncRedisSessions``: the manager's API as coroutines, for asyncio apps (ASGI).

It drives the very generators of operations.py (validation, keys, scripts, reply parsing exist
once) over the asyncio wire (async_wire.py: one pipelined connection per event loop), as
``RedisSessions`` drives them over the blocking one.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.cluster
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio import RedisCluster as AsyncRedisCluster

from . import core, validate
from ._constants import (
    DEFAULT_CACHE_MAX,
    DEFAULT_NAMESPACE,
    DEFAULT_TTL,
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
from .operations import Call, Calls, Op, Operations, Session, T

__all__ = ["AsyncRedisSessions"]

AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster


def _async_client(redis_: Any, layout: str) -> tuple[AsyncClient, bool]:
    """The async client to use and whether we own it (built it from a URL). A URL with
    ``layout="cluster"`` builds a ``redis.asyncio.RedisCluster`` (it loads the slot map on
    first use)."""
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


def _sync_client(client: AsyncClient) -> redis.Redis:
    """A blocking client to the same server, for the cache's pub/sub listener thread."""
    if isinstance(client, redis.asyncio.RedisCluster):
        raise NotImplementedError("cache_time with a cluster client is not supported yet")
    pool = client.connection_pool
    if isinstance(pool, redis.asyncio.SentinelConnectionPool):
        raise NotImplementedError("cache_time with a Sentinel client is not supported yet")
    kwargs = dict(pool.connection_kwargs)
    if issubclass(pool.connection_class, redis.asyncio.UnixDomainSocketConnection):
        kwargs["unix_socket_path"] = kwargs.pop("path", None)
    if issubclass(pool.connection_class, redis.asyncio.SSLConnection):
        kwargs["ssl"] = True
    accepted = inspect.signature(redis.Redis).parameters
    return redis.Redis(**{k: v for k, v in kwargs.items() if k in accepted})


class AsyncRedisSessions(Operations):
    """``RedisSessions`` for asyncio: the same API, options and errors, as coroutines.

    ``redis`` is a ``redis.asyncio.Redis`` client (a Sentinel master client too), a
    ``redis.asyncio.RedisCluster`` (with ``layout="cluster"``), a URL (a cluster node's with
    ``layout="cluster"``), or None (``REDIS_URL``, else the local default). Calls on one event
    loop share one pipelined connection (per cluster node); a reply slower than the client's
    ``socket_timeout`` (5 s for a client built here) raises ``BackendUnavailable``. ``wipe``
    runs as a task of the loop that used the manager last; ``cache_time`` > 0 uses the same
    local cache as ``RedisSessions`` (its invalidation listener is a thread with a blocking
    client to the same server; not with a cluster yet). ``layout="cluster"``: the cluster key
    layout, on a Redis Cluster or on one server (a ``redis.asyncio.Redis`` client, or a URL of
    a server that is no cluster node).
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
    ) -> None:
        super().__init__(namespace, redis_ttl, max_data_keys, max_data_bytes, layout)
        if wipe and (not isinstance(wipe, int) or wipe < MIN_TTL):
            raise ValidationError("invalidValue", f"wipe must be 0 or an integer >= {MIN_TTL}")
        if isinstance(redis, AsyncRedisCluster) and layout != "cluster":
            raise ValidationError("invalidValue", "a RedisCluster client needs layout=\"cluster\" "
                                  "(Node's layout puts an app's keys in many slots)")
        self.client, self._owns_client = _async_client(redis, layout)
        self._wire: AsyncWire | AsyncClusterWire
        if isinstance(self.client, AsyncRedisCluster):
            # a URL: the cluster layout on that one Redis when it is no cluster node
            single = _async_client(redis, "node")[0] if self._owns_client else None
            assert single is None or isinstance(single, AsyncRedis)
            self._wire = AsyncClusterWire(self.client, self._owns_client, single)
        else:
            self._wire = AsyncWire(self.client)
        self._sync_client = _sync_client(self.client) if cache_time > 0 else None
        if self._sync_client is not None:
            self.cache = LocalCache(self._sync_client, self.keys.cache_channel, cache_time,
                                    cache_max)
        self.wipe_interval = wipe
        self._wiper: asyncio.Task[None] | None = None

    async def _drive(self, op: Op[T]) -> T:
        """Run one operation: each Redis call it yields is awaited on the wire; an error is
        thrown back into it (where a token collision is retried)."""
        if self.wipe_interval:
            self._ensure_wiper()
        wire = self._wire
        try:
            step = next(op)
            while True:
                try:
                    if isinstance(step, Call):
                        reply: Any = await wire.run(step.script, step.keys, step.args, step.wait)
                    elif isinstance(step, Calls):
                        reply = await wire.run_many(step.script, step.calls, step.wait)
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
                      ttl: int = DEFAULT_TTL, changes: Sequence[bytes] = ()) -> Session:
        """Log ``id`` in, atomically, under a new token (``RedisSessions.upgrade``)."""
        op = self._rotate(app, token, validate.user_id(id), ip, ttl, changes)
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

    async def killsoid(self, app: str, id: str | int) -> int:
        """Remove every session of user ``id``; returns how many there were."""
        return await self._drive(self._killsoid(app, id))

    async def killall(self, app: str) -> int:
        """Remove every session of ``app``; returns how many there were."""
        return await self._drive(self._killall(app))

    async def soid(self, app: str, id: str | int) -> list[Session]:
        """The live sessions of user ``id``, each with its ``token``."""
        return await self._drive(self._soid(app, id))

    async def soapp(self, app: str, dt: int) -> list[Session]:
        """The live sessions of ``app`` active within ``dt`` seconds, newest first."""
        return await self._drive(self._soapp(app, dt))

    async def activity(self, app: str, dt: int) -> int:
        """How many distinct user ids of ``app`` were active within ``dt`` seconds."""
        return await self._drive(self._activity(app, dt))

    async def wipe(self) -> int:
        """Remove the expired sessions of every app now; returns how many were removed."""
        return await self._drive(self._wipe())

    async def ping(self) -> bool:
        """True when Redis answers."""
        return await self._wire.command((b"PING",)) in (b"PONG", "PONG")

    async def close(self) -> None:
        """Stop the wiper and the cache listener and close the connections."""
        if self._wiper is not None:
            if not self._wiper.get_loop().is_closed():
                self._wiper.cancel()
            self._wiper = None
        if self.cache is not None:
            self.cache.close()
        if self._sync_client is not None:
            self._sync_client.close()
        self._wire.close()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisSessions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

