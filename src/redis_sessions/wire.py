"""Runs the session scripts with one round trip each, over a connection held per thread.

The connection comes from the redis-py client's own pool, so connecting, AUTH, TLS, Sentinel and
reconnects stay redis-py's; what this module skips is redis-py's per-command work (pool
acquire/release, argument encoding, response callbacks), which costs more than the round trip
itself. Commands are packed by the core. Connections are held per thread, dropped in a forked
child and returned to the pool when their thread ends. Redis failures become ``BackendError`` /
``BackendUnavailable``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import redis
from redis.exceptions import NoScriptError, ResponseError

from . import core
from .errors import BackendError, BackendUnavailable, SessionTooLarge
from .scripts import Script

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

Arg = bytes | str | int


class _Held:
    """A pool connection owned by one thread of one process until that thread ends."""

    __slots__ = ("pool", "conn", "pid", "__weakref__")

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.conn = pool.get_connection()

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            try:
                self.pool.release(conn)
            except Exception:  # noqa: BLE001 - the pool may be closed already
                pass

    def __del__(self) -> None:
        self.release()


def backend_error(exc: Exception) -> BackendError:
    """The redis-sessions exception for a redis-py one (the original is kept as __cause__)."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return BackendUnavailable(f"Redis is unavailable: {exc}")
    message = str(exc)
    if message.startswith("RSTOOLARGE "):
        return SessionTooLarge(message[len("RSTOOLARGE ") :])
    return BackendError(f"Redis error: {message}")


class Wire:
    """EVALSHA with NOSCRIPT recovery over held connections of ``client``'s pool."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool: redis.ConnectionPool = client.connection_pool
        self._local = threading.local()

    def _connection(self) -> _Held:
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

    def _roundtrip(self, held: _Held, packed: bytes, count: int) -> list[object]:
        conn = held.conn
        try:
            # A reply waiting before we sent anything means the server closed the connection
            # (a restart, a timeout): reconnect now rather than fail this call.
            if conn._sock is not None and conn.can_read(0):  # type: ignore[union-attr]
                conn.disconnect()  # type: ignore[union-attr]
        except _CONNECTION_ERRORS:
            conn.disconnect()  # type: ignore[union-attr]
        try:
            conn.send_packed_command([packed], check_health=False)  # type: ignore[union-attr]
            replies = []
            for _ in range(count):
                try:
                    replies.append(conn.read_response())  # type: ignore[union-attr]
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except _CONNECTION_ERRORS as exc:
            conn.disconnect()  # type: ignore[union-attr]
            raise backend_error(exc) from exc

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> object:
        """Run one script: one round trip (two after a NOSCRIPT, which loads it)."""
        return self.run_many(script, [(keys, args)])[0]

    def run_many(
        self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[object]:
        """Run one script for several key/argument sets in one round trip (pipelined)."""
        held = self._connection()
        head = [b"EVALSHA", script.sha]
        packed = b"".join(
            core.pack_command([*head, len(keys), *keys, *args]) for keys, args in calls
        )
        replies = self._roundtrip(held, packed, len(calls))
        if any(isinstance(r, NoScriptError) for r in replies):
            # The server lost its script cache (restart, SCRIPT FLUSH): send the body once.
            retry = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            first_keys, first_args = calls[retry[0]]
            eval_head = [b"EVAL", script.body, len(first_keys), *first_keys, *first_args]
            packed = core.pack_command(eval_head) + b"".join(
                core.pack_command([*head, len(calls[i][0]), *calls[i][0], *calls[i][1]])
                for i in retry[1:]
            )
            for i, reply in zip(retry, self._roundtrip(held, packed, len(retry))):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise backend_error(reply) from reply
        return replies
