"""``AsyncRedisSessions``: the manager's API as coroutines, for asyncio apps (ASGI).

It drives the very generators of operations.py (validation, keys, scripts, reply parsing exist
once) over an asyncio wire: ONE connection per event loop, shared by every coroutine of that loop
by pipelining, as Node's client does. Each request is written at once (packed by the core) and
its future queued; one reader task feeds a ``hiredis.Reader`` and resolves the futures in order.
Connecting (AUTH, SELECT, TLS, unix sockets, Sentinel) is redis-py's async ``Connection``; only its
streams are used afterwards. Redis failures become ``BackendError`` / ``BackendUnavailable`` as in
the blocking wire; a dropped connection is reopened by the next call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio

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
from .cache import LocalCache
from .errors import BackendError, SessionError, ValidationError
from .manager import CONNECT_TIMEOUT, DEFAULT_URL, SOCKET_TIMEOUT
from .operations import Arg, Call, Calls, Op, Operations, Session, T, Wait
from .scripts import Script
from .wire import backend_error, check_acknowledged, wait_command

__all__ = ["AsyncRedisSessions"]

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# above this many bytes waiting in the socket's send buffer, a writer awaits the drain
_HIGH_WATER = 1 << 20


def _is_noscript(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


class _Pipe:
    """One connection shared by every coroutine of one event loop: requests are written as they
    come; replies are matched to them in order (a FIFO of futures) by one reader task.

    ``timeout`` (seconds, None for none) bounds the wait for the oldest reply: one timer per
    pipe rather than one per request. When it fires, or the connection fails, every pending
    request fails and the pipe is closed; the next call opens a new one.
    """

    __slots__ = ("conn", "loop", "writer", "transport", "waiters", "timeout", "timer", "task",
                 "error", "pending")

    def __init__(self, conn: Any, timeout: float | None) -> None:
        self.conn = conn  # redis.asyncio Connection, connected; its streams are ours now
        self.loop = asyncio.get_running_loop()
        self.writer: asyncio.StreamWriter = conn._writer
        self.transport = self.writer.transport
        # (future, deadline) per expected reply, oldest first
        self.waiters: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        self.error: BaseException | None = None  # set once the pipe is closed
        # requests written in this turn of the loop: sent together by one write at its end
        self.pending: list[bytes] = []
        self.task = self.loop.create_task(self._read(conn._reader))

    @classmethod
    async def open(cls, pool: Any) -> _Pipe:
        conn = pool.make_connection()
        try:
            await conn.connect()
        except _CONNECTION_ERRORS as exc:
            raise backend_error(exc) from exc
        except redis.RedisError as exc:  # AUTH or SELECT refused
            raise BackendError(f"Redis error: {exc}") from exc
        return cls(conn, conn.socket_timeout)

    def send(self, packed: bytes, count: int) -> list[asyncio.Future[Any]]:
        """Write one packed request expecting ``count`` replies; their futures, in order."""
        if self.error is not None:
            raise self.error
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(packed)
        deadline = 0.0 if self.timeout is None else self.loop.time() + self.timeout
        if self.timer is None and self.timeout is not None:
            self.timer = self.loop.call_at(deadline, self._check_timeout)
        futures = []
        waiters = self.waiters
        for _ in range(count):
            future = self.loop.create_future()
            waiters.append((future, deadline))
            futures.append(future)
        return futures

    def _flush(self) -> None:
        """Write the requests of this turn of the loop with one send (Node's auto-pipelining):
        concurrent requests cost one system call, not one each."""
        pending = self.pending
        self.pending = []
        if self.error is None and pending:
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        reader = hiredis.Reader()
        waiters = self.waiters
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    raise redis.ConnectionError("Connection closed by server.")
                reader.feed(data)
                reply = reader.gets()
                while reply is not False:
                    if not waiters:
                        raise BackendError("Redis sent a reply nobody asked for")
                    future = waiters.popleft()[0]
                    if not future.done():  # (its caller may have been cancelled)
                        future.set_result(reply)
                    reply = reader.gets()
        except hiredis.ProtocolError as exc:
            self.close(BackendError(f"Redis protocol error: {exc}"))
        except asyncio.CancelledError:
            self.close(redis.ConnectionError("the connection was closed"))
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter must learn of it
            self.close(exc)

    def _check_timeout(self) -> None:
        self.timer = None
        if not self.waiters:
            return
        deadline = self.waiters[0][1]
        if deadline <= self.loop.time():
            self.close(redis.TimeoutError("Timeout reading from Redis"))
        else:
            self.timer = self.loop.call_at(deadline, self._check_timeout)

    def close(self, error: BaseException) -> None:
        """Fail every pending request with ``error`` and drop the connection: a late reply must
        never be read as the next one."""
        if self.error is None:
            self.error = error
        self.pending = []
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.loop.is_closed():  # nobody waits any more; the transport cannot close itself
            self.waiters.clear()
            sock = self.transport.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.shutdown(socket.SHUT_RDWR)  # Redis drops the client; the fd goes with GC
            return
        while self.waiters:
            future = self.waiters.popleft()[0]
            if not future.done():
                future.set_exception(error)
        self.transport.abort()
        if not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()


class AsyncWire:
    """EVALSHA with NOSCRIPT recovery over one pipelined connection per event loop."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.pool = client.connection_pool
        # per event loop (a pipe's transport belongs to one loop); closed loops are pruned
        self._pipes: dict[asyncio.AbstractEventLoop, _Pipe] = {}
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._last: _Pipe | None = None  # the pipe used last: the hot path skips the lookup

    async def _pipe(self) -> _Pipe:
        pipe = self._last
        loop = asyncio.get_running_loop()
        if pipe is not None and pipe.error is None and pipe.loop is loop:
            return pipe
        pipe = self._pipes.get(loop)
        if pipe is None or pipe.error is not None:
            lock = self._locks.get(loop)
            if lock is None:
                self._prune()
                lock = self._locks[loop] = asyncio.Lock()
            async with lock:  # one connect per loop, however many callers wait for it
                pipe = self._pipes.get(loop)
                if pipe is None or pipe.error is not None:
                    pipe = self._pipes[loop] = await _Pipe.open(self.pool)
        self._last = pipe
        return pipe

    def _prune(self) -> None:
        """Forget the pipes of closed event loops (a test client's loop per request, say)."""
        for loop in [loop for loop in self._locks if loop.is_closed()]:
            del self._locks[loop]
            pipe = self._pipes.pop(loop, None)
            if pipe is not None:
                pipe.close(redis.ConnectionError("its event loop was closed"))

    async def _roundtrip(self, packed: bytes, count: int) -> list[Any]:
        """Send ``packed`` and await ``count`` replies (error replies are returned, not raised)."""
        pipe = await self._pipe()
        try:
            futures = pipe.send(packed, count)
            if pipe.transport.get_write_buffer_size() > _HIGH_WATER:  # Redis reads slowly
                await pipe.writer.drain()
            if count == 1:
                return [await futures[0]]
            return list(await asyncio.gather(*futures))
        except _CONNECTION_ERRORS as exc:
            pipe.close(exc)
            raise backend_error(exc) from exc

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
                  wait: Wait | None = None) -> Any:
        """Run one script: one round trip (two after a NOSCRIPT, which loads it); with ``wait``
        a WAIT goes in the same round trip."""
        tail = wait_command(wait)
        count = 2 if wait else 1
        packed = core.pack_command([b"EVALSHA", script.sha, len(keys), *keys, *args]) + tail
        try:
            replies = await self._roundtrip(packed, count)
        except BackendError as exc:
            # a reset connection (not a timeout) is retried once when a second run is harmless
            cause = exc.__cause__
            if not script.retry_safe or not isinstance(cause, redis.ConnectionError):
                raise
            replies = await self._roundtrip(packed, count)
        reply = replies[0]
        if isinstance(reply, hiredis.ReplyError):
            if _is_noscript(reply):  # the server lost its script cache: send the body once
                packed = core.pack_command([b"EVAL", script.body, len(keys), *keys, *args]) + tail
                replies = await self._roundtrip(packed, count)
                reply = replies[0]
            if isinstance(reply, hiredis.ReplyError):
                raise backend_error(reply) from reply
        if wait:
            check_acknowledged(replies[1], wait, reply)
        return reply

    async def command(self, args: Sequence[Arg]) -> Any:
        """Run one plain command in one round trip; an error reply raises."""
        reply = (await self._roundtrip(core.pack_command(args), 1))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply

    async def run_many(self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
                       wait: Wait | None = None) -> list[Any]:
        """Run one script for several key/argument sets in one round trip (pipelined); with
        ``wait`` one WAIT after them all."""
        if not calls:
            return []
        packed = b"".join(
            core.pack_command([b"EVALSHA", script.sha, len(keys), *keys, *args])
            for keys, args in calls
        )
        replies = await self._roundtrip(packed + wait_command(wait), len(calls) + bool(wait))
        acks = replies.pop() if wait else None
        missing = False
        for i, reply in enumerate(replies):
            if _is_noscript(reply):
                replies[i] = await self.run(script, *calls[i])
                missing = True
            elif isinstance(reply, hiredis.ReplyError):
                raise backend_error(reply) from reply
        if wait:
            if missing:  # the scripts sent again wrote after that WAIT
                acks = await self.command((b"WAIT", wait[0], wait[1]))
            check_acknowledged(acks, wait, replies)
        return replies

    def close(self) -> None:
        """Close every connection (those of event loops already closed are just dropped)."""
        for pipe in self._pipes.values():
            pipe.close(redis.ConnectionError("the session manager was closed"))
        self._pipes.clear()
        self._locks.clear()
        self._last = None


def _async_client(redis_: Any) -> tuple[redis.asyncio.Redis, bool]:
    """The async client to use and whether we own it (built it from a URL)."""
    if isinstance(redis_, redis.asyncio.Redis):
        return redis_, False
    if isinstance(redis_, (redis.Redis, redis.asyncio.RedisCluster)):
        raise TypeError("AsyncRedisSessions needs a redis.asyncio.Redis client (a Sentinel "
                        "master's too) or a URL; cluster clients are not supported yet")
    url = redis_ or os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise TypeError("redis must be a redis.asyncio.Redis client, a URL string or None")
    client = redis.asyncio.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    return client, True


def _sync_client(client: redis.asyncio.Redis) -> redis.Redis:
    """A blocking client to the same server, for the cache's pub/sub listener thread."""
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

    ``redis`` is a ``redis.asyncio.Redis`` client (a Sentinel master client too; cluster clients
    are not supported yet), a URL, or None (``REDIS_URL``, else the local default). Calls on
    one event loop share one pipelined connection; a reply slower than the client's
    ``socket_timeout`` (5 s for a client built here) raises ``BackendUnavailable``. ``wipe``
    runs as a task of the loop that used the manager last; ``cache_time`` > 0 uses the same
    local cache as ``RedisSessions`` (its invalidation listener is a thread with a blocking
    client to the same server). ``layout="cluster"``: the cluster key layout, on one server.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis | str | None = None,
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
        self.client, self._owns_client = _async_client(redis)
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
                        reply = await wire.command(step.args)
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

