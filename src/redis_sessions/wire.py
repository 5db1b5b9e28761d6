"""Runs the session scripts with one round trip each, over a connection held per thread.

The connection comes from the redis-py client's own pool, so connecting, AUTH, TLS, Sentinel and
reconnects stay redis-py's; what this module skips is redis-py's per-command work (pool
acquire/release, argument encoding, parser layers, response callbacks), which costs more than the
round trip itself. Commands are packed by the core and replies read with ``hiredis.Reader``.
Connections are held per thread, dropped in a forked child and returned to the pool when their
thread ends. Redis failures become ``BackendError`` / ``BackendUnavailable``.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Sequence
from typing import Any

import hiredis
import redis

from . import core, scripts
from .errors import (
    BackendError,
    BackendUnavailable,
    ReplicationTimeout,
    SessionError,
    SessionTooLarge,
)
from .scripts import Arg, Script

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
_TIMEOUTS = (redis.TimeoutError, TimeoutError)



class _Held:
    """A pool connection owned by one thread of one process until that thread ends.

    Replies are read by a ``hiredis.Reader`` of our own straight from the connection's socket;
    redis-py's parser is never used on a held connection, so the two never share a stream.
    """

    __slots__ = ("pool", "conn", "pid", "sock", "reader", "poller", "__weakref__")

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.sock: socket.socket | None = None
        self.reader = hiredis.Reader()
        self.poller = select.poll()
        # redis-py's Connection: its socket (``_sock``) is read directly, hence Any
        self.conn: Any = None
        self.conn = pool.get_connection()

    def socket(self) -> socket.socket:
        """The live socket, (re)connecting through redis-py when there is none or it went stale."""
        sock = self.sock
        conn = self.conn
        if sock is not None and sock is conn._sock:
            # Anything readable before we sent a command means the server closed the
            # connection (restart, idle timeout): reconnect now rather than fail this call.
            if not self.poller.poll(0):
                return sock
            conn.disconnect()
        if conn._sock is None:
            conn.connect()  # AUTH, TLS, SELECT, HELLO: redis-py's
        sock = self.sock = conn._sock
        self.reader = hiredis.Reader()
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN | select.POLLPRI)
        return sock

    def drop(self) -> None:
        """Close the socket after a failure: a late reply must never be read as the next one."""
        self.sock = None
        if self.conn is not None:
            self.conn.disconnect()

    def read(self, count: int) -> list[object]:
        """Read ``count`` replies of what was sent (error replies are returned, not raised); a
        broken or garbled stream drops the connection and raises our exception."""
        try:
            sock, reader = self.sock, self.reader
            assert sock is not None
            replies: list[object] = []
            while len(replies) < count:
                reply = reader.gets()
                if reply is False:
                    data = sock.recv(65536)
                    if not data:
                        raise redis.ConnectionError("Connection closed by server.")
                    reader.feed(data)
                else:
                    replies.append(reply)
            return replies
        except _CONNECTION_ERRORS as exc:
            self.drop()
            raise backend_error(exc) from exc
        except hiredis.ProtocolError as exc:
            self.drop()
            raise BackendError(f"Redis protocol error: {exc}") from exc

    def release(self) -> None:
        conn, self.conn = self.conn, None
        self.sock = None
        if conn is not None and self.pid == os.getpid():
            try:
                self.pool.release(conn)
            except Exception:  # noqa: BLE001 - the pool may be closed already
                pass

    def __del__(self) -> None:
        self.release()


def backend_error(exc: Exception) -> SessionError:
    """The redis-sessions exception for a redis-py/hiredis one (the original is its __cause__)."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return BackendUnavailable(f"Redis is unavailable: {exc}")
    message = str(exc)
    unsupported = scripts.unsupported(message)  # no Functions, or the ACL forbids them
    if unsupported is not None:
        return unsupported
    if message.startswith("RSTOOLARGE "):
        return SessionTooLarge(message[len("RSTOOLARGE ") :])
    if message.startswith(("CROSSSLOT", "MOVED", "ASK ", "CLUSTERDOWN")):
        return BackendError(f"Redis error: {message} (this Redis is a cluster node: Node's layout "
                            'cannot run on a Redis Cluster, use layout="cluster")')
    return BackendError(f"Redis error: {message}")


def wait_command(wait: tuple[int, int] | None) -> bytes:
    """The packed WAIT sent after a durable step's writes (b"" for none)."""
    return b"" if wait is None else core.pack_command([b"WAIT", wait[0], wait[1]])


def check_acknowledged(acks: object, wait: tuple[int, int], reply: object = None) -> None:
    """Raise ReplicationTimeout when WAIT reports fewer replicas than asked."""
    if isinstance(acks, hiredis.ReplyError):
        raise backend_error(acks) from acks
    if int(acks) < wait[0]:  # type: ignore[call-overload]
        raise ReplicationTimeout(
            f"the write reached {acks} of {wait[0]} replicas within {wait[1]} ms: a failover "
            "now could undo it", int(acks), reply)  # type: ignore[call-overload]


def script_reply(replies: list[object], wait: tuple[int, int] | None) -> object:
    """One script call's reply from its round trip: an error reply raised; with ``wait`` the
    WAIT acknowledgement (the reply after it) checked."""
    reply = replies[0]
    if isinstance(reply, hiredis.ReplyError):
        raise backend_error(reply) from reply
    if wait:
        check_acknowledged(replies[1], wait, reply)
    return reply


def reload_request(script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
                   replies: list[object], wait: tuple[int, int] | None
                   ) -> tuple[list[int], bytes, int]:
    """After a pipelined batch: the calls whose server lacked the library, and the one request
    that loads it and sends them again (a WAIT after them) with its reply count."""
    missing = [i for i, reply in enumerate(replies) if scripts.is_missing(reply)]
    if not missing:
        return missing, b"", 0
    packed = b"".join(script.pack(*calls[i]) for i in missing)
    return missing, scripts.LOAD + packed + wait_command(wait), len(missing) + 1 + bool(wait)


def batch_result(replies: list[object], acks: object, missing: list[int], again: list[object],
                 wait: tuple[int, int] | None) -> list[object]:
    """A batch's replies with those sent ``again`` (``reload_request``) in place: an error reply
    raised; with ``wait`` the last WAIT's acknowledgement checked."""
    if missing:
        acks = again.pop() if wait else None
        for i, reply in zip(missing, again[1:]):
            replies[i] = scripts.after_load(again[0], reply)
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
    if wait:
        check_acknowledged(acks, wait, replies)
    return replies


def _is_readonly(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("READONLY")


class Wire:
    """FCALL (the library loaded when missing) over held connections of ``client``'s pool."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool: redis.ConnectionPool = client.connection_pool
        self._local = threading.local()

    def _held(self) -> _Held:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid() or held.conn is None:
            try:
                held = _Held(self.pool)
            except _CONNECTION_ERRORS as exc:
                raise backend_error(exc) from exc
            self._local.held = held
        return held

    def release(self) -> None:
        """Give this thread's connection back to the pool (close() calls it)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            held.release()
            self._local.held = None

    @staticmethod
    def _roundtrip(held: _Held, packed: bytes, count: int) -> list[object]:
        """Send ``packed`` and read ``count`` replies (error replies are returned, not raised)."""
        try:
            held.socket().sendall(packed)
        except _CONNECTION_ERRORS as exc:
            held.drop()
            raise backend_error(exc) from exc
        return held.read(count)

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
            wait: tuple[int, int] | None = None) -> object:
        """Run one script: one round trip (two when the server lacks the library, which the
        second loads); with ``wait`` a WAIT goes in the same round trip."""
        held = self._held()
        tail = wait_command(wait)
        count = 2 if wait else 1
        packed = script.pack(keys, args) + tail
        try:
            replies = self._roundtrip(held, packed, count)
        except BackendUnavailable as exc:
            # A reset connection (not a timeout: that would double the wait) is retried once,
            # on a new connection, when running the script twice does no harm.
            if not script.retry_safe or isinstance(exc.__cause__, _TIMEOUTS):
                raise
            replies = self._roundtrip(held, packed, count)
        if _is_readonly(replies[0]):
            # A failover made our server a replica (Sentinel): nothing was written. A new
            # connection from the pool (a Sentinel pool asks for the new master) gets it once more.
            held.drop()
            replies = self._roundtrip(held, packed, count)
        if scripts.is_missing(replies[0]):  # a new, restarted or flushed server: load, call again
            load, *replies = self._roundtrip(held, scripts.LOAD + packed, count + 1)
            replies[0] = scripts.after_load(load, replies[0])
        return script_reply(replies, wait)

    def command(self, args: Sequence[Arg], key: Arg | None = None) -> object:
        """Run one plain command in one round trip; an error reply raises. (``key``: the
        cluster wire's routing hint, unused here.)"""
        reply = self._roundtrip(self._held(), core.pack_command(args), 1)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply

    def run_many(
        self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
        wait: tuple[int, int] | None = None,
    ) -> list[object]:
        """Run one script for several key/argument sets in one round trip (pipelined); with
        ``wait`` one WAIT after them all."""
        if not calls:
            return []
        held = self._held()
        packed = b"".join(script.pack(keys, args) for keys, args in calls)
        replies = self._roundtrip(held, packed + wait_command(wait), len(calls) + bool(wait))
        acks = replies.pop() if wait else None
        missing, reload, count = reload_request(script, calls, replies, wait)
        again = self._roundtrip(held, reload, count) if missing else []
        return batch_result(replies, acks, missing, again, wait)
