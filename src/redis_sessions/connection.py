"""The connection discipline of all four wires, in one place: a connection is either idle with no
reply owed, or closed.

Blocking wires (wire.py, cluster_wire.py) take a connection of redis-py's pool for each call
(``take``), write with ``send``, read with ``receive`` and hand it back with ``give_back``, which
first closes a connection that still owes a reply. Between calls a connection waits in its pool's
idle list of this process, and is taken from there only when its socket has nothing to read
(a poll); a new one comes from the pool (redis-py connects it and checks the pid). A bounded pool
(``BlockingConnectionPool``) gets every connection back after each call, so its waiters are
served. However a call ends early (a timeout, a reset, ``gevent.Timeout``, a killed
greenlet, ``KeyboardInterrupt``, an exception raised by a signal handler) and wherever it strikes,
including inside the clean-up itself, the next caller never reads another caller's reply. Nothing
is held per thread, so neither gevent's monkeypatching nor a pre-forking server can leave a
connection shared, and bounded pools are honoured. ``Lease`` does the same for the connections
of one fan-out: when it ends, however it ends, each was read to the end or is closed.

The asyncio wires (async_wire.py, async_cluster_wire.py) share one ``Pipe`` per event loop and
server: one reader task matches replies to their waiters in order, so a cancelled caller's reply
is still read (and dropped), and a broken stream fails every waiter and closes. A call that holds
its connection on the server (WAIT) takes an exclusive pipe of its own (``Pipes.exclusive``), so
it never holds up the others.

Processes: ``forget_in_child`` registers an object whose ``_after_fork()`` runs in every forked
child, to drop what belongs to the parent (connections, locks a parent thread may hold).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import socket
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import hiredis
import redis

from .errors import BackendError, BackendUnavailable

__all__ = ["take", "send", "receive", "give_back", "roundtrip", "close_idle", "Lease", "Pipe", "Pipes",
           "exchange", "forget_in_child", "unavailable", "CONNECTION_ERRORS", "TIMEOUTS"]

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
TIMEOUTS = (redis.TimeoutError, TimeoutError)
# set on a redis-py Connection from the moment a request is written until all its replies are
# read; a connection handed back (or taken) with it set is closed first
_OWED = "_redis_sessions_owed"
# on a redis-py Connection: (its socket, a poll object watching that socket)
_POLL = "_redis_sessions_poll"
# on a redis-py pool: its _Idle list in this process (False: a bounded pool, which keeps none)
_IDLE = "_redis_sessions_idle"
# on a redis-py Connection: the empty hiredis.Reader its last clean read left (none while a call
# reads: one that ends any other way takes its reader, and whatever that held, with it)
_READER = "_redis_sessions_reader"
_READABLE = select.POLLIN | select.POLLPRI


def unavailable(exc: BaseException) -> BackendUnavailable:
    """The exception of a connection that failed (the original is its ``__cause__``)."""
    return BackendUnavailable(f"Redis is unavailable: {exc}")


# -- processes -----------------------------------------------------------------------------------

class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_IN_CHILD: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_in_child(obj: _ForkAware) -> None:
    """Call ``obj._after_fork()`` in every process forked from this one (once registered, for
    the object's life): the child then re-creates what it must not share with its parent."""
    _IN_CHILD.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_IN_CHILD):
        obj._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- blocking: one connection per call, from redis-py's pool ---------------------------------------

def close(conn: Any) -> None:
    """Close ``conn``: a reply it owes can never be read as another request's."""
    conn.disconnect()
    conn.__dict__[_OWED] = False  # only once closed: an interrupted close leaves it marked


class _Idle:
    """This process's connections of one pool between two calls: (connection, its socket, the
    poll object that tells whether the server closed it or sent anything)."""

    __slots__ = ("conns", "__weakref__")

    def __init__(self) -> None:
        self.conns: list[tuple[Any, socket.socket, Any]] = []
        forget_in_child(self)

    def _after_fork(self) -> None:
        self.conns = []  # the parent's: never used in a child


def _idle_of(pool: redis.ConnectionPool) -> _Idle | None:
    """``pool``'s idle list (made on first use); None for a bounded pool."""
    idle: _Idle | bool | None = pool.__dict__.get(_IDLE)
    if idle is None:
        idle = pool.__dict__[_IDLE] = (
            False if isinstance(pool, redis.BlockingConnectionPool) else _Idle())
    return idle if isinstance(idle, _Idle) else None


def take(pool: redis.ConnectionPool) -> Any:
    """A connected connection of ``pool`` for one call (nothing sent yet: a failure here is
    always safe to try again): an idle one whose socket has nothing to read, else one from the
    pool, where redis-py checks the pid and that it has nothing to read. One whose close was
    itself interrupted is closed and connected again here."""
    idle = pool.__dict__.get(_IDLE)
    if idle:
        conns = idle.conns
        while conns:
            try:
                conn, sock, poller = conns.pop()
            except IndexError:  # another thread took the last one
                break
            try:
                if conn._sock is sock and not poller.poll(0):
                    return conn
            except BaseException:  # interrupted while looking (gevent's poll may switch)
                conns.append((conn, sock, poller))  # it owes nothing: idle still
                raise
            # the server closed it (a restart, a timeout) or sent what nobody asked for
            close(conn)
            pool.release(conn)
    try:
        conn = pool.get_connection()
    except CONNECTION_ERRORS as exc:  # refused, timed out, none free in a bounded pool
        raise unavailable(exc) from exc
    except redis.RedisError as exc:  # AUTH or SELECT refused
        raise BackendError(f"Redis error: {exc}") from exc
    if conn.__dict__.get(_OWED):
        try:
            close(conn)
            conn.connect()
        except BaseException as exc:
            pool.release(conn)
            if isinstance(exc, CONNECTION_ERRORS):
                raise unavailable(exc) from exc
            raise
    return conn


def send(conn: Any, packed: bytes) -> None:
    """Write ``packed`` on ``conn``; it owes replies from the first byte on."""
    conn.__dict__[_OWED] = True
    try:
        conn._sock.sendall(packed)
    except CONNECTION_ERRORS as exc:
        close(conn)
        raise unavailable(exc) from exc


def receive(conn: Any, count: int) -> list[object]:
    """Read ``count`` replies from ``conn`` (error replies are returned, not raised). A broken,
    garbled or over-full stream closes the connection and raises our exception."""
    sock = conn._sock
    reader = conn.__dict__.pop(_READER, None) or hiredis.Reader()
    replies: list[object] = []
    try:
        while len(replies) < count:
            reply = reader.gets()
            if reply is False:
                data = sock.recv(65536)
                if not data:
                    raise redis.ConnectionError("Connection closed by server.")
                reader.feed(data)
            else:
                replies.append(reply)
    except CONNECTION_ERRORS as exc:
        close(conn)
        raise unavailable(exc) from exc
    except hiredis.ProtocolError as exc:
        close(conn)
        raise BackendError(f"Redis protocol error: {exc}") from exc
    if reader.has_data():  # more than was asked for: nothing on this stream can be trusted
        close(conn)
        raise BackendError("Redis protocol error: more replies than requests")
    conn.__dict__[_OWED] = False
    conn.__dict__[_READER] = reader  # read to its last byte: empty, for the next call
    return replies


def give_back(pool: redis.ConnectionPool, conn: Any) -> None:
    """Hand ``conn`` back after a call: closed first when it still owes a reply; then to the
    idle list when it is connected and its pool keeps one, else to the pool."""
    try:
        if conn.__dict__.get(_OWED):
            close(conn)
    finally:
        idle = _idle_of(pool)
        sock = conn._sock
        if idle is None or sock is None:
            pool.release(conn)
        else:
            watched = conn.__dict__.get(_POLL)
            if watched is None or watched[0] is not sock:
                poller = select.poll()
                poller.register(sock, _READABLE)
                watched = conn.__dict__[_POLL] = (sock, poller)
            idle.conns.append((conn, sock, watched[1]))


def close_idle(pool: redis.ConnectionPool) -> None:
    """Close the connections waiting for a call, in the pool and in this process's idle list
    (a failover made their server a replica: new ones ask a Sentinel pool for the master)."""
    idle = _idle_of(pool)
    while idle is not None and idle.conns:
        try:
            conn = idle.conns.pop()[0]
        except IndexError:
            break
        close(conn)
        pool.release(conn)
    pool.disconnect(inuse_connections=False)


def roundtrip(pool: redis.ConnectionPool, packed: bytes, count: int) -> list[object]:
    """Send ``packed`` on a connection of ``pool`` and read its ``count`` replies."""
    conn = take(pool)
    try:
        send(conn, packed)
        return receive(conn, count)
    finally:
        give_back(pool, conn)


class Lease:
    """The connections of one fan-out (``with Lease() as lease: conn = lease.take(pool)``):
    when the block ends, however it ends, each is given back, closed first if a reply it owes
    was not read."""

    __slots__ = ("_taken",)

    def __init__(self) -> None:
        self._taken: list[tuple[redis.ConnectionPool, Any]] = []

    def take(self, pool: redis.ConnectionPool) -> Any:
        conn = take(pool)
        self._taken.append((pool, conn))
        return conn

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        taken, self._taken = self._taken, []
        try:
            while taken:
                give_back(*taken.pop())
        finally:
            for pool, conn in taken:  # only after an interruption of the loop above
                close(conn)
                pool.release(conn)


# -- asyncio: one pipelined connection per event loop and server ---------------------------------

# above this many bytes waiting in the socket's send buffer, a writer awaits the drain
_HIGH_WATER = 1 << 20
# exclusive pipes kept open per event loop and server, for the next call that needs one
_MAX_IDLE_EXCLUSIVE = 4


class Pipe:
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
    async def open(cls, conn: Any) -> Pipe:
        """Connect ``conn`` (a new redis.asyncio ``Connection``: a pool's, or a cluster node's)
        and make it a pipe."""
        try:
            await conn.connect()
        except CONNECTION_ERRORS as exc:
            raise unavailable(exc) from exc
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


async def exchange(pipe: Pipe, packed: bytes, count: int) -> list[Any]:
    """Send ``packed`` on ``pipe`` and await its ``count`` replies (error replies returned); a
    broken connection raises BackendUnavailable (the requests may have run)."""
    try:
        futures = pipe.send(packed, count)
        if pipe.transport.get_write_buffer_size() > _HIGH_WATER:  # Redis reads slowly
            await pipe.writer.drain()
        if count == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))
    except CONNECTION_ERRORS as exc:
        pipe.close(exc)
        raise unavailable(exc) from exc


class Pipes:
    """One event loop's connections to one server: the pipe every call shares, opened once
    however many callers wait for it, and exclusive pipes lent to one call at a time."""

    __slots__ = ("_connect", "shared", "_lock", "_idle")

    def __init__(self, connect: Callable[[], Awaitable[Pipe]]) -> None:
        self._connect = connect
        self.shared: Pipe | None = None
        self._lock = asyncio.Lock()
        self._idle: list[Pipe] = []

    async def pipe(self) -> Pipe:
        """The shared pipe, open."""
        pipe = self.shared
        if pipe is None or pipe.error is not None:
            async with self._lock:
                pipe = self.shared
                if pipe is None or pipe.error is not None:
                    pipe = self.shared = await self._connect()
        return pipe

    async def exclusive(self, packed: bytes, count: int) -> list[Any]:
        """``exchange`` on a pipe no other call uses meanwhile (for a request that holds its
        connection on the server, as WAIT does); closed unless it ends with every reply read."""
        pipe = None
        while self._idle and pipe is None:
            pipe = self._idle.pop()
            if pipe.error is not None:  # closed while idle (the server dropped it)
                pipe = None
        if pipe is None:
            pipe = await self._connect()
        try:
            replies = await exchange(pipe, packed, count)
        except BaseException:
            pipe.close(redis.ConnectionError("the call ended before its replies"))
            raise
        if len(self._idle) < _MAX_IDLE_EXCLUSIVE:
            self._idle.append(pipe)
        else:
            pipe.close(redis.ConnectionError("an exclusive connection too many"))
        return replies

    def close(self, error: BaseException) -> None:
        """Close every pipe (the next call opens a new shared one)."""
        pipes, self._idle = self._idle, []
        if self.shared is not None:
            pipes.append(self.shared)
        for pipe in pipes:
            pipe.close(error)
