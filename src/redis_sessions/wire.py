"""Runs the session scripts with one round trip each, over a connection of the client's pool.

Each call takes a connection of the redis-py client's own pool and gives it back (connection.py:
the one connection discipline of every wire), so connecting, AUTH, TLS, Sentinel, reconnects,
bounded pools and fork checks stay redis-py's; what this module skips is redis-py's per-command
work (argument encoding, parser layers, response callbacks), which costs more than the round trip
itself. Commands are packed by the core and replies read with ``hiredis.Reader``. Redis failures
become ``BackendError`` / ``BackendUnavailable``.
"""

from __future__ import annotations

from collections.abc import Sequence

import hiredis
import redis

from . import core, scripts
from .connection import CONNECTION_ERRORS, TIMEOUTS, close_idle, roundtrip, unavailable
from .errors import (
    BackendError,
    BackendUnavailable,
    ReplicationTimeout,
    SessionError,
    SessionTooLarge,
    ValidationError,
)
from .scripts import Arg, Script


def backend_error(exc: Exception) -> SessionError:
    """The redis-sessions exception for a redis-py/hiredis one (the original is its __cause__):
    a script's refusal of its arguments is the ``ValidationError`` it is (``SessionTooLarge``
    for the size limits), every other error a ``BackendError``."""
    if isinstance(exc, CONNECTION_ERRORS):
        return unavailable(exc)
    message = str(exc)
    unsupported = scripts.unsupported(message)  # no Functions, or the ACL forbids them
    if unsupported is not None:
        return unsupported
    # the scripts' refusals of their arguments: the app's errors, not Redis failures
    if message.startswith("RSTOOLARGE "):
        return SessionTooLarge(message[len("RSTOOLARGE ") :])
    if message.startswith("RSINVALID "):
        return ValidationError("invalidValue", message[len("RSINVALID ") :])
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


def is_readonly(reply: object) -> bool:
    """A write refused by a replica (a failover demoted our server): nothing was written."""
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("READONLY")


class Wire:
    """FCALL (the library loaded when missing) over connections of ``client``'s pool, one per
    call."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool: redis.ConnectionPool = client.connection_pool

    def _roundtrip(self, packed: bytes, count: int) -> list[object]:
        """Send ``packed`` and read ``count`` replies (error replies are returned, not raised)."""
        return roundtrip(self.pool, packed, count)

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
            wait: tuple[int, int] | None = None) -> object:
        """Run one script: one round trip (two when the server lacks the library, which the
        second loads); with ``wait`` a WAIT goes in the same round trip."""
        tail = wait_command(wait)
        count = 2 if wait else 1
        packed = script.pack(keys, args) + tail
        try:
            replies = self._roundtrip(packed, count)
        except BackendUnavailable as exc:
            # A reset connection (not a timeout: that would double the wait) is retried once,
            # on a new connection, when running the script twice does no harm.
            if not script.retry_safe or isinstance(exc.__cause__, TIMEOUTS):
                raise
            replies = self._roundtrip(packed, count)
        if is_readonly(replies[0]):
            # A failover made our server a replica (Sentinel): nothing was written, and every
            # idle connection points at it. Closed, they connect anew (a Sentinel pool asks for
            # the new master) and the call goes once more.
            close_idle(self.pool)
            replies = self._roundtrip(packed, count)
        if scripts.is_missing(replies[0]):  # a new, restarted or flushed server: load, call again
            load, *replies = self._roundtrip(scripts.LOAD + packed, count + 1)
            replies[0] = scripts.after_load(load, replies[0])
        return script_reply(replies, wait)

    def command(self, args: Sequence[Arg], key: Arg | None = None) -> object:
        """Run one plain command in one round trip; an error reply raises. (``key``: the
        cluster wire's routing hint, unused here.)"""
        reply = self._roundtrip(core.pack_command(args), 1)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply

    def commands(self, commands: Sequence[Sequence[Arg]], key: Arg | None = None
                 ) -> list[object]:
        """Run plain commands that only read in one round trip (pipelined); an error reply
        raises. A reset connection (not a timeout) is retried once on a new one, as the
        functions that may run twice are. (``key``: the cluster wire's routing hint.)"""
        packed = b"".join(core.pack_command(args) for args in commands)
        try:
            replies = self._roundtrip(packed, len(commands))
        except BackendUnavailable as exc:
            if isinstance(exc.__cause__, TIMEOUTS):
                raise
            replies = self._roundtrip(packed, len(commands))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise backend_error(reply) from reply
        return replies

    def run_many(
        self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
        wait: tuple[int, int] | None = None,
    ) -> list[object]:
        """Run one script for several key/argument sets in one round trip (pipelined); with
        ``wait`` one WAIT after them all."""
        if not calls:
            return []
        packed = b"".join(script.pack(keys, args) for keys, args in calls)
        replies = self._roundtrip(packed + wait_command(wait), len(calls) + bool(wait))
        acks = replies.pop() if wait else None
        missing, reload, count = reload_request(script, calls, replies, wait)
        again = self._roundtrip(reload, count) if missing else []
        return batch_result(replies, acks, missing, again, wait)
