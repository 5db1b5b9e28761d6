"""The asyncio wire: the session scripts over ONE pipelined connection per event loop.

Concurrent coroutines of a loop share the connection, as Node's client does: each request is
written at once (packed by the core) and its future queued; one reader task feeds a
``hiredis.Reader`` and resolves the futures in order (``connection.Pipe``: the connection
discipline every wire shares). A durable write's WAIT, which holds its connection on the server,
goes on an exclusive connection instead, so it never holds up the other calls. Connecting (AUTH,
SELECT, TLS, unix sockets, Sentinel) is redis-py's async ``Connection``; only its streams are
used afterwards. Redis failures become ``BackendError`` / ``BackendUnavailable`` as in the
blocking wire (wire.py); a dropped connection is reopened by the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio

from . import core, scripts
from .connection import TIMEOUTS, Pipe, Pipes, exchange, forget_in_child
from .errors import BackendUnavailable
from .operations import Arg, Wait
from .scripts import Script
from .wire import (
    backend_error,
    batch_result,
    is_readonly,
    reload_request,
    script_reply,
    wait_command,
)

__all__ = ["AsyncWire"]


class AsyncWire:
    """FCALL (the library loaded when missing) over one pipelined connection per event loop."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.pool = client.connection_pool
        # per event loop (a pipe's transport belongs to one loop); closed loops are pruned
        self._pipes: dict[asyncio.AbstractEventLoop, Pipes] = {}
        self._last: Pipe | None = None  # the shared pipe used last: the hot path skips lookups
        forget_in_child(self)

    def _after_fork(self) -> None:
        # the parent's connections are not this process's: forgotten, not closed (a shutdown
        # would cut the parent's socket too)
        self._pipes = {}
        self._last = None

    def _of_loop(self) -> Pipes:
        loop = asyncio.get_running_loop()
        pipes = self._pipes.get(loop)
        if pipes is None:
            self._prune()
            pipes = self._pipes[loop] = Pipes(self._open)
        return pipes

    async def _open(self) -> Pipe:
        return await Pipe.open(self.pool.make_connection())

    async def _pipe(self) -> Pipe:
        pipe = self._last
        if pipe is not None and pipe.error is None and pipe.loop is asyncio.get_running_loop():
            return pipe
        pipe = self._last = await self._of_loop().pipe()
        return pipe

    def _prune(self) -> None:
        """Forget the pipes of closed event loops (a test client's loop per request, say)."""
        for loop in [loop for loop in self._pipes if loop.is_closed()]:
            self._pipes.pop(loop).close(redis.ConnectionError("its event loop was closed"))

    async def _roundtrip(self, packed: bytes, count: int, exclusive: bool = False) -> list[Any]:
        """Send ``packed`` and await ``count`` replies (error replies are returned, not raised);
        ``exclusive``: on a connection of its own (a WAIT holds its connection)."""
        if exclusive:
            return await self._of_loop().exclusive(packed, count)
        return await exchange(await self._pipe(), packed, count)

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
                  wait: Wait | None = None) -> Any:
        """Run one script: one round trip (two when the server lacks the library, which the
        second loads); with ``wait`` a WAIT goes in the same round trip, on a connection of its
        own."""
        tail = wait_command(wait)
        count = 2 if wait else 1
        exclusive = wait is not None
        packed = script.pack(keys, args) + tail
        try:
            replies = await self._roundtrip(packed, count, exclusive)
        except BackendUnavailable as exc:
            # a reset connection (not a timeout) is retried once when a second run is harmless
            if not script.retry_safe or isinstance(exc.__cause__, TIMEOUTS):
                raise
            replies = await self._roundtrip(packed, count, exclusive)
        if is_readonly(replies[0]):
            # a failover made our server a replica (Sentinel): nothing was written; new
            # connections (a Sentinel pool asks for the new master) get the call once more
            self._of_loop().close(redis.ConnectionError("the server became a replica"))
            replies = await self._roundtrip(packed, count, exclusive)
        if scripts.is_missing(replies[0]):  # a new, restarted or flushed server: load, again
            load, *replies = await self._roundtrip(scripts.LOAD + packed, count + 1, exclusive)
            replies[0] = scripts.after_load(load, replies[0])
        return script_reply(replies, wait)

    async def command(self, args: Sequence[Arg], key: Arg | None = None) -> Any:
        """Run one plain command in one round trip; an error reply raises. (``key``, the
        cluster wire's routing hint, means nothing on one Redis.)"""
        reply = (await self._roundtrip(core.pack_command(args), 1))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply

    async def commands(self, commands: Sequence[Sequence[Arg]], key: Arg | None = None
                       ) -> list[Any]:
        """Run plain commands that only read in one round trip (pipelined); an error reply
        raises; a reset connection (not a timeout) is retried once. (``key``: unused here.)"""
        packed = b"".join(core.pack_command(args) for args in commands)
        try:
            replies = await self._roundtrip(packed, len(commands))
        except BackendUnavailable as exc:
            if isinstance(exc.__cause__, TIMEOUTS):
                raise
            replies = await self._roundtrip(packed, len(commands))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise backend_error(reply) from reply
        return replies

    async def run_many(self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
                       wait: Wait | None = None) -> list[Any]:
        """Run one script for several key/argument sets in one round trip (pipelined); with
        ``wait`` one WAIT after them all."""
        if not calls:
            return []
        packed = b"".join(script.pack(keys, args) for keys, args in calls)
        exclusive = wait is not None
        replies = await self._roundtrip(packed + wait_command(wait), len(calls) + bool(wait),
                                        exclusive)
        acks = replies.pop() if wait else None
        missing, reload, count = reload_request(script, calls, replies, wait)
        again = await self._roundtrip(reload, count, exclusive) if missing else []
        return batch_result(replies, acks, missing, again, wait)

    def close(self) -> None:
        """Close every connection (those of event loops already closed are just dropped)."""
        for pipes in self._pipes.values():
            pipes.close(redis.ConnectionError("the session manager was closed"))
        self._pipes.clear()
        self._last = None
