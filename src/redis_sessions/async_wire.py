"""The asyncio wire: the session scripts over ONE pipelined connection per event loop.

Concurrent coroutines of a loop share the connection, as Node's client does: each request is
written at once (packed by the core) and its future queued; one reader task feeds a
``hiredis.Reader`` and resolves the futures in order. Connecting (AUTH, SELECT, TLS, unix sockets,
Sentinel) is redis-py's async ``Connection``; only its streams are used afterwards. Redis failures
become ``BackendError`` / ``BackendUnavailable`` as in the blocking wire (wire.py); a dropped
connection is reopened by the next call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio

from . import core, scripts
from .errors import BackendError
from .operations import Arg, Wait
from .scripts import Script
from .wire import (
    backend_error,
    batch_result,
    reload_request,
    script_reply,
    wait_command,
)

__all__ = ["AsyncWire"]

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# above this many bytes waiting in the socket's send buffer, a writer awaits the drain
_HIGH_WATER = 1 << 20


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
        # None, or the requests that came after the first one of this turn of the loop: the
        # first is written at once (no added latency), the others together at the turn's end
        self.pending: list[bytes] | None = None
        self.task = self.loop.create_task(self._read(conn._reader))

    @classmethod
    async def open(cls, conn: Any) -> _Pipe:
        """Connect ``conn`` (a new redis.asyncio ``Connection``: a pool's, or a cluster node's)
        and make it a pipe."""
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
        if self.pending is None:
            self.transport.write(packed)
            self.pending = []
            self.loop.call_soon(self._flush)
        else:
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
        """Write the requests that followed the first one in this turn of the loop with one
        send (as Node's auto-pipelining): a burst costs two system calls, not one each."""
        pending = self.pending
        self.pending = None
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
        self.pending = None
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


async def exchange(pipe: _Pipe, packed: bytes, count: int) -> list[Any]:
    """Send ``packed`` on ``pipe`` and await its ``count`` replies (error replies returned); a
    broken connection raises BackendUnavailable (the requests may have run)."""
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


class AsyncWire:
    """FCALL (the library loaded when missing) over one pipelined connection per event loop."""

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
                    pipe = self._pipes[loop] = await _Pipe.open(self.pool.make_connection())
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
        return await exchange(await self._pipe(), packed, count)

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
                  wait: Wait | None = None) -> Any:
        """Run one script: one round trip (two when the server lacks the library, which the
        second loads); with ``wait`` a WAIT goes in the same round trip."""
        tail = wait_command(wait)
        count = 2 if wait else 1
        packed = script.pack(keys, args) + tail
        try:
            replies = await self._roundtrip(packed, count)
        except BackendError as exc:
            # a reset connection (not a timeout) is retried once when a second run is harmless
            cause = exc.__cause__
            if not script.retry_safe or not isinstance(cause, redis.ConnectionError):
                raise
            replies = await self._roundtrip(packed, count)
        if scripts.is_missing(replies[0]):  # a new, restarted or flushed server: load, again
            load, *replies = await self._roundtrip(scripts.LOAD + packed, count + 1)
            replies[0] = scripts.after_load(load, replies[0])
        return script_reply(replies, wait)

    async def command(self, args: Sequence[Arg], key: Arg | None = None) -> Any:
        """Run one plain command in one round trip; an error reply raises. (``key``, the
        cluster wire's routing hint, means nothing on one Redis.)"""
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
        packed = b"".join(script.pack(keys, args) for keys, args in calls)
        replies = await self._roundtrip(packed + wait_command(wait), len(calls) + bool(wait))
        acks = replies.pop() if wait else None
        missing, reload, count = reload_request(script, calls, replies, wait)
        again = await self._roundtrip(reload, count) if missing else []
        return batch_result(replies, acks, missing, again, wait)

    def close(self) -> None:
        """Close every connection (those of event loops already closed are just dropped)."""
        for pipe in self._pipes.values():
            pipe.close(redis.ConnectionError("the session manager was closed"))
        self._pipes.clear()
        self._locks.clear()
        self._last = None
