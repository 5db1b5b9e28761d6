"""The wire for a Redis Cluster: each call goes to the master of its keys' slot, on a connection
taken from that node's pool for the call, pipelined per master for a fan-out.

The slot map, the nodes and their connection pools are redis-py's (``RedisCluster``'s
``nodes_manager``); what this adds is the routing of our packed commands and their replies
(hiredis) under the connection discipline of connection.py (a fan-out's connections are read to
the end or closed, however it ends), MOVED/ASK, and the wait through a failover: a call that never reached a master
(connection refused, CLUSTERDOWN, TRYAGAIN, MOVED) is sent again once the slot map is refreshed,
for up to ``FAILOVER_WAIT`` seconds; a call that may have run when its connection broke is sent
again only when its script is ``retry_safe`` (else BackendUnavailable, as on one Redis).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from . import core, scripts
from .connection import Lease, forget_in_child, receive, send
from .errors import BackendError, BackendUnavailable
from .scripts import Script
from .wire import Arg, backend_error, check_acknowledged, wait_command

# How long a call keeps trying while the cluster fails over (a master's replica is promoted
# after cluster-node-timeout plus an election, usually a few seconds).
FAILOVER_WAIT = 15.0
_PAUSE = 0.05  # first pause between attempts; doubles up to _MAX_PAUSE
_MAX_PAUSE = 0.5


def not_a_cluster(exc: Exception) -> BackendUnavailable:
    """The error of a URL given with ``layout="cluster"`` whose node is no cluster node (or
    gives no slot map): such a URL always means a Redis Cluster, never one server."""
    return BackendUnavailable(
        f"layout=\"cluster\" with a URL builds a RedisCluster client: {exc} (for the cluster "
        "layout on one Redis, pass a redis.Redis client, or redis.asyncio.Redis for asyncio)")


def _encode(key: Arg) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode("utf-8", "surrogateescape")


class _Request:
    """One command of a batch: where it goes and how it is sent again."""

    __slots__ = ("slot", "packed", "retry_safe", "is_script", "asking", "load")

    def __init__(self, slot: int | None, packed: bytes, retry_safe: bool,
                 is_script: bool = False) -> None:
        self.slot, self.packed, self.retry_safe = slot, packed, retry_safe
        self.is_script = is_script
        self.asking: str | None = None  # a node name after an ASK redirection
        self.load = False  # that master lacks the library: LOAD goes first


_ASKING = b"*1\r\n$6\r\nASKING\r\n"


def batch_data(requests: list[_Request]) -> tuple[bytes, int]:
    """One node's requests as sent (LOAD ahead of a call whose master lacks the library,
    ASKING ahead of a redirected one) and how many replies they get."""
    data = b"".join((scripts.LOAD if r.load else b"") + (_ASKING if r.asking else b"") + r.packed
                    for r in requests)
    return data, sum(1 + bool(r.asking) + r.load for r in requests)


class _Unsent(Exception):
    """The connection failed before anything was sent: safe to send again."""


def batch_replies(requests: list[_Request], indexes: list[int], got: list[object],
                  wait_sent: bool, wait: tuple[int, int] | None) -> list[tuple[int, object]]:
    """Each request's reply from one node's batch, in order: ASKING's +OK skipped (the request
    then goes without it), a LOAD's reply folded into its call's (``scripts.after_load``), and
    the WAIT acknowledgement taken off the end and checked (``ReplicationTimeout.reply``: the
    one request's reply, or the list of them)."""
    acks = got.pop() if wait_sent else None
    out = []
    position = 0
    for i in indexes:
        request = requests[i]
        load = None
        if request.load:
            load = got[position]
            position += 1
            request.load = False
        if request.asking:
            position += 1
            request.asking = None
        reply = got[position]
        out.append((i, reply if load is None else scripts.after_load(load, reply)))
        position += 1
    replies = [reply for _, reply in out]
    if wait and not isinstance(acks, hiredis.ReplyError) and \
            not any(isinstance(r, hiredis.ReplyError) for r in replies):
        check_acknowledged(acks, wait, replies[0] if len(replies) == 1 else replies)
    return out


class ClusterWire:
    """FCALL/commands routed by slot to the masters of ``client``'s cluster."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.nodes = client.nodes_manager
        self._refresh_lock = threading.Lock()
        self._map_version = 0
        forget_in_child(self)

    def _after_fork(self) -> None:
        self._refresh_lock = threading.Lock()  # a parent's thread may have held it

    # -- connections ------------------------------------------------------------------------------

    def _pool(self, node: Any) -> Any:
        return self.client.get_redis_connection(node).connection_pool

    def _take(self, lease: Lease, node: Any) -> Any:
        """A connection to ``node`` for this call; ``_Unsent`` when there is none."""
        try:
            return lease.take(self._pool(node))
        except BackendUnavailable as exc:
            raise _Unsent(str(exc)) from exc

    def _node(self, request: _Request) -> Any:
        if request.asking is not None:
            node = self.nodes.get_node(node_name=request.asking)
            if node is not None:
                return node
        if request.slot is None:
            return self.nodes.get_node_from_slot(0)
        return self.nodes.get_node_from_slot(request.slot)

    def _refresh(self, seen_version: int) -> None:
        """Reload the slot map, once for all the callers that saw the old one fail. A caller
        that finds another reloading it does not wait for the lock (under gevent the holder may
        be a greenlet of this very thread): its next attempt, after a pause, uses the new map."""
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            if self._map_version != seen_version:
                return
            try:
                self.nodes.initialize()
            except (redis.RedisError, OSError):
                pass  # no node answered yet: the next attempt tries again
            self._map_version += 1
        finally:
            self._refresh_lock.release()

    # -- one batch ------------------------------------------------------------------------------

    def _send(self, lease: Lease, node: Any, requests: list[_Request], tail: bytes
              ) -> tuple[Any, int]:
        """Write one node's requests and ``tail`` on a connection of this call's ``lease``;
        the connection and how many replies it owes."""
        conn = self._take(lease, node)
        data, count = batch_data(requests)
        send(conn, data + tail)
        return conn, count + (1 if tail else 0)

    def _execute(self, requests: list[_Request], wait: tuple[int, int] | None) -> list[object]:
        """Send every request to its slot's master (pipelined per master, all masters at once),
        following redirections and failovers; the replies in the order of ``requests``."""
        replies: list[object] = [None] * len(requests)
        pending = list(range(len(requests)))
        deadline = time.monotonic() + FAILOVER_WAIT
        pause = _PAUSE
        tail = wait_command(wait)
        while True:
            version = self._map_version
            groups: dict[str, tuple[Any, list[int]]] = {}
            for i in pending:
                node = self._node(requests[i])
                groups.setdefault(node.name, (node, []))[1].append(i)
            again: list[int] = []
            failure: Exception | None = None
            with Lease() as lease:  # however this attempt ends, no connection owes a reply
                sent: list[tuple[Any, int, list[int]]] = []
                for node, indexes in groups.values():
                    try:
                        conn, count = self._send(lease, node, [requests[i] for i in indexes],
                                                 tail)
                    except _Unsent as exc:
                        again += indexes
                        failure = exc
                        continue
                    except BackendUnavailable as exc:
                        self._after_break(indexes, requests, again, exc)
                        failure = exc
                        continue
                    sent.append((conn, count, indexes))
                for conn, count, indexes in sent:
                    try:
                        got = receive(conn, count)
                    except BackendUnavailable as exc:
                        self._after_break(indexes, requests, again, exc)
                        failure = exc
                        continue
                    for i, reply in batch_replies(requests, indexes, got, bool(tail), wait):
                        if self._redirected(requests[i], reply):
                            again.append(i)
                            failure = BackendError(f"Redis error: {reply}")
                        else:
                            replies[i] = reply
            if not again:
                return replies
            if time.monotonic() > deadline:
                assert failure is not None
                if isinstance(failure, _Unsent):
                    raise BackendUnavailable(f"Redis is unavailable: {failure}") from failure
                raise failure
            # an ASK or a missing library goes again at once; anything else after a new map
            if any(requests[i].asking is None and not requests[i].load for i in again):
                self._refresh(version)
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            pending = again

    @staticmethod
    def _after_break(indexes: list[int], requests: list[_Request], again: list[int],
                     exc: BackendUnavailable) -> None:
        """A connection broke after sending: what may have run is sent again only when that
        is harmless, else the failure is the caller's."""
        if all(requests[i].retry_safe for i in indexes):
            again += indexes
        else:
            raise exc

    def _redirected(self, request: _Request, reply: object) -> bool:
        """Whether ``reply`` sends the request elsewhere (it is then prepared to go again)."""
        if not isinstance(reply, hiredis.ReplyError):
            return False
        message = str(reply)
        if message.startswith("ASK "):
            request.asking = message.split()[2]  # "host:port", redis-py's node name
            return True
        if message.startswith(("MOVED ", "TRYAGAIN", "CLUSTERDOWN")):
            return True
        if scripts.is_missing(reply) and request.is_script:  # that master lacks the library
            request.load = True
            return True
        return False

    # -- the Wire interface ---------------------------------------------------------------------

    @staticmethod
    def _call(script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> _Request:
        return _Request(key_slot(_encode(keys[0])) if keys else None, script.pack(keys, args),
                        script.retry_safe, True)

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
            wait: tuple[int, int] | None = None) -> object:
        """Run one script on the master of its keys' slot: one round trip on a connection to
        that master; anything unusual (no connection, a redirection, a broken connection, a
        missing library) goes the general way of ``_execute``."""
        request = self._call(script, keys, args)
        if wait is None:
            try:
                reply = self._once(request)
            except _Unsent:
                request = self._call(script, keys, args)  # nothing was sent: the general way
            except BackendUnavailable:
                if not script.retry_safe:
                    raise  # it may have run: the caller's to know, as on one Redis
                return self._checked(self._execute([self._call(script, keys, args)], None))[0]
            else:
                if not isinstance(reply, hiredis.ReplyError):
                    return reply
                if not self._redirected(request, reply):
                    raise backend_error(reply) from reply
        return self._checked(self._execute([request], wait))[0]

    def _once(self, request: _Request) -> object:
        """``request`` on its slot's master as the map has it: one round trip."""
        with Lease() as lease:
            conn = self._take(lease, self._node(request))
            send(conn, request.packed)
            return receive(conn, 1)[0]

    @staticmethod
    def _checked(replies: list[object]) -> list[object]:
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise backend_error(reply) from reply
        return replies

    def run_many(self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
                 wait: tuple[int, int] | None = None) -> list[object]:
        """Run one script for several key sets: one pipeline per master, sent to all at once."""
        if not calls:
            return []
        return self._checked(
            self._execute([self._call(script, keys, args) for keys, args in calls], wait))

    def commands(self, commands: Sequence[Sequence[Arg]], key: Arg | None = None
                 ) -> list[object]:
        """Run plain commands that only read, pipelined on the master of ``key``'s slot."""
        slot = None if key is None else key_slot(_encode(key))
        return self._checked(self._execute(
            [_Request(slot, core.pack_command(args), True) for args in commands], None))

    def command(self, args: Sequence[Arg], key: Arg | None = None) -> object:
        """Run one plain command on the master of ``key``'s slot (any master for None)."""
        slot = None if key is None else key_slot(_encode(key))
        reply = self._execute([_Request(slot, core.pack_command(args), True)], None)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply
