"""The asyncio wire for a Redis Cluster: each call goes to the master of its keys' slot, over ONE
pipelined connection per (event loop, node), as ``AsyncWire`` does on one Redis (a durable
write's WAIT on an exclusive one).

The slot map and the nodes' connection settings are redis-py's (``redis.asyncio.RedisCluster``'s
``nodes_manager``); the connections are connection.py's pipes. Routing, MOVED/ASK and the wait
through a failover follow the blocking cluster wire (cluster_wire.py): a call that never reached
a master is sent again once the slot map is refreshed, for up to ``FAILOVER_WAIT`` seconds; one
that may have run when its connection broke only when its script is ``retry_safe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisClusterException

from . import core, scripts
from .connection import CONNECTION_ERRORS, Pipe, Pipes, exchange, forget_in_child
from .cluster_wire import (
    _MAX_PAUSE,
    _PAUSE,
    FAILOVER_WAIT,
    ClusterWire,
    _encode,
    _Request,
    _Unsent,
    batch_data,
    batch_replies,
    not_a_cluster,
)
from .errors import BackendError, BackendUnavailable
from .operations import Arg, Wait
from .scripts import Script
from .wire import backend_error, wait_command

__all__ = ["AsyncClusterWire"]

_call = ClusterWire._call
_checked = ClusterWire._checked
_after_break = ClusterWire._after_break


class AsyncClusterWire:
    """FCALL/commands routed by slot to the masters of an async ``RedisCluster``."""

    def __init__(self, client: redis.asyncio.RedisCluster, owns_client: bool = False) -> None:
        self.client = client
        # a client built by the manager keeps no connection between slot map loads, so that it
        # belongs to no event loop (as async_wire's use of a pool); a caller's client is theirs
        self._owns_client = owns_client
        self.nodes = client.nodes_manager
        # per event loop (a pipe's transport belongs to one loop), then per node name
        self._pipes: dict[asyncio.AbstractEventLoop, dict[str, Pipes]] = {}
        self._refresh_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._map_version = 0
        self._ready = False  # the slot map was loaded (the client's initialize())
        forget_in_child(self)

    def _after_fork(self) -> None:
        # the parent's connections are not this process's: forgotten, not closed
        self._pipes = {}
        self._refresh_locks = {}

    # -- the slot map ---------------------------------------------------------------------------

    async def _initialize(self) -> None:
        """Load the slot map once (redis-py's async cluster client connects lazily)."""
        try:
            await self.client.initialize()
        except RedisClusterException as exc:  # e.g. "Cluster mode is not enabled on this node"
            if self._owns_client:  # built from a URL, which means a cluster (make_client's rule)
                raise not_a_cluster(exc) from exc
            raise BackendUnavailable(f"Redis Cluster: {exc}") from exc
        except CONNECTION_ERRORS as exc:
            raise backend_error(exc) from exc
        finally:
            await self._drop_client_connections()
        self._ready = True

    async def _drop_client_connections(self) -> None:
        """Close redis-py's own node connections of a client built here (used only to load
        the slot map): closing the client later then needs no event loop of the past."""
        if self._owns_client:
            # (two node objects of one name, equal for redis-py, may each hold a connection)
            nodes = {id(node): node for node in (*self.nodes.nodes_cache.values(),
                                                 *self.nodes.startup_nodes.values())}
            await asyncio.gather(*(node.disconnect() for node in nodes.values()),
                                 return_exceptions=True)

    def _node(self, request: _Request) -> Any:
        """The node ``request`` goes to: its ASK target, else its slot's master."""
        if request.asking is not None:
            node = self.nodes.get_node(node_name=request.asking)
            if node is None:  # a node the map does not know yet
                host, port = request.asking.rsplit(":", 1)
                node = ClusterNode(host, int(port), **self.nodes.connection_kwargs)
            return node
        try:
            return self.nodes.get_node_from_slot(request.slot or 0)
        except RedisClusterException as exc:  # the slot has no master in this map
            raise _Unsent(str(exc)) from exc

    async def _refresh(self, seen_version: int) -> None:
        """Reload the slot map, once for all the calls of a loop that saw the old one fail."""
        loop = asyncio.get_running_loop()
        lock = self._refresh_locks.get(loop)
        if lock is None:
            lock = self._refresh_locks[loop] = asyncio.Lock()
        async with lock:
            if self._map_version != seen_version:
                return
            try:
                await self.nodes.initialize()
            except (redis.RedisError, OSError, RuntimeError):
                pass  # no node answered yet (or another loop refreshes): the next attempt retries
            finally:
                await self._drop_client_connections()
            self._map_version += 1

    # -- connections ------------------------------------------------------------------------------

    def _pipes_of(self, node: Any) -> Pipes:
        """This loop's connections to ``node``."""
        loop = asyncio.get_running_loop()
        nodes = self._pipes.get(loop)
        if nodes is None:
            self._prune()
            nodes = self._pipes[loop] = {}
        pipes = nodes.get(node.name)
        if pipes is None:
            pipes = nodes[node.name] = Pipes(lambda: self._open(node))
        return pipes

    def _open_pipe(self, node: Any) -> Pipe | None:
        """This loop's open shared pipe to ``node``, if any (no await: the hot path)."""
        nodes = self._pipes.get(asyncio.get_running_loop())
        pipes = nodes.get(node.name) if nodes is not None else None
        pipe = pipes.shared if pipes is not None else None
        return pipe if pipe is not None and pipe.error is None else None

    @staticmethod
    async def _open(node: Any) -> Pipe:
        """A new pipe to ``node``; ``_Unsent`` when it cannot be reached (nothing was sent)."""
        kwargs = dict(node.connection_kwargs)
        # one attempt: a node that refuses is the failover loop's to wait for
        kwargs["retry"] = Retry(NoBackoff(), 0)
        try:
            return await Pipe.open(node.connection_class(**kwargs))
        except BackendUnavailable as exc:
            raise _Unsent(str(exc)) from exc

    def _prune(self) -> None:
        """Forget the pipes of closed event loops."""
        for loop in [loop for loop in self._pipes if loop.is_closed()]:
            self._refresh_locks.pop(loop, None)
            for pipes in self._pipes.pop(loop).values():
                pipes.close(redis.ConnectionError("its event loop was closed"))

    # -- one batch ------------------------------------------------------------------------------

    async def _execute(self, requests: list[_Request], wait: Wait | None) -> list[object]:
        """Send every request to its slot's master (pipelined per master, all masters at once),
        following redirections and failovers; the replies in the order of ``requests``."""
        loop = asyncio.get_running_loop()
        replies: list[object] = [None] * len(requests)
        pending = list(range(len(requests)))
        deadline = loop.time() + FAILOVER_WAIT
        pause = _PAUSE
        tail = wait_command(wait)
        attempt = 0
        while True:
            attempt += 1
            version = self._map_version
            again: list[int] = []
            moved: list[str] = []
            quick = 0  # redirections that need no new slot map nor a pause: MOVED, a missing library
            failure: Exception | None = None
            groups: dict[str, tuple[Any, list[int]]] = {}
            for i in pending:
                try:
                    node = self._node(requests[i])
                except _Unsent as exc:
                    again.append(i)
                    failure = exc
                    continue
                groups.setdefault(node.name, (node, []))[1].append(i)
            outcomes = await asyncio.gather(
                *(self._send_group(node, [requests[i] for i in indexes], tail)
                  for node, indexes in groups.values()),
                return_exceptions=True)
            for (node, indexes), got in zip(groups.values(), outcomes):
                if isinstance(got, _Unsent):
                    again += indexes
                    failure = got
                    continue
                if isinstance(got, BackendUnavailable):
                    _after_break(indexes, requests, again, got)
                    failure = got
                    continue
                if isinstance(got, BaseException):
                    raise got
                for i, reply in batch_replies(requests, indexes, got, bool(tail), wait):
                    if self._redirected(requests[i], reply):
                        again.append(i)
                        failure = BackendError(f"Redis error: {reply}")
                        if str(reply).startswith("MOVED "):
                            moved.append(str(reply)[len("MOVED "):])
                        quick += str(reply).startswith("MOVED ") or scripts.is_missing(reply)
                    else:
                        replies[i] = reply
            if not again:
                return replies
            if loop.time() > deadline:
                assert failure is not None
                if isinstance(failure, _Unsent):
                    raise BackendUnavailable(f"Redis is unavailable: {failure}") from failure
                raise failure
            for where in moved:  # "slot host:port": that slot's new master, as redis-py learns it
                await self.nodes.move_slot(MovedError(where))
            if attempt > 1 or quick < sum(requests[i].asking is None for i in again):
                # not just a moved slot the first time (a failover, TRYAGAIN, a ping-pong of
                # MOVED while a slot changes hands): the whole map again, after a pause
                await self._refresh(version)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            pending = again

    async def _send_group(self, node: Any, requests: list[_Request], tail: bytes) -> list[Any]:
        """One node's requests (``batch_data``) and ``tail``, in one write on its pipe (an
        exclusive one behind a WAIT); every reply, ASKING's and LOAD's included."""
        pipes = self._pipes_of(node)
        data, count = batch_data(requests)
        if tail:
            return await pipes.exclusive(data + tail, count + 1)
        return await exchange(await pipes.pipe(), data, count)

    def _redirected(self, request: _Request, reply: object) -> bool:
        """Whether ``reply`` sends ``request`` elsewhere (then prepared to go again): the
        blocking wire's rule, which uses no state of its wire."""
        return ClusterWire._redirected(self, request, reply)  # type: ignore[arg-type]

    # -- the AsyncWire interface ------------------------------------------------------------------

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg],
                  wait: Wait | None = None) -> Any:
        """Run one script on the master of its keys' slot: one round trip on this loop's pipe
        to that master; anything unusual (no pipe yet, a redirection, a broken connection, a
        missing script) goes the general way of ``_execute``."""
        if not self._ready:
            await self._initialize()
        request = _call(script, keys, args)
        if wait is None:
            try:
                node = self.nodes.get_node_from_slot(request.slot or 0)
            except RedisClusterException:
                node = None
            pipe = self._open_pipe(node) if node is not None else None
            if pipe is not None:
                try:
                    reply = (await exchange(pipe, request.packed, 1))[0]
                except BackendUnavailable:
                    if not script.retry_safe:
                        raise  # it may have run: the caller's to know, as on one Redis
                    return _checked(await self._execute([_call(script, keys, args)], None))[0]
                if not isinstance(reply, hiredis.ReplyError):
                    return reply
                if not self._redirected(request, reply):
                    raise backend_error(reply) from reply
                if str(reply).startswith("MOVED "):
                    await self.nodes.move_slot(MovedError(str(reply)[len("MOVED "):]))
                return _checked(await self._execute([request], None))[0]
        return _checked(await self._execute([request], wait))[0]

    async def run_many(self, script: Script, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
                       wait: Wait | None = None) -> list[Any]:
        """Run one script for several key sets: one pipelined write per master, all at once;
        with ``wait`` one WAIT per master after its scripts."""
        if not calls:
            return []
        if not self._ready:
            await self._initialize()
        return _checked(await self._execute([_call(script, k, a) for k, a in calls], wait))

    async def commands(self, commands: Sequence[Sequence[Arg]], key: Arg | None = None
                       ) -> list[Any]:
        """Run plain commands that only read, pipelined on the master of ``key``'s slot."""
        if not self._ready:
            await self._initialize()
        slot = None if key is None else key_slot(_encode(key))
        return _checked(await self._execute(
            [_Request(slot, core.pack_command(args), True) for args in commands], None))

    async def command(self, args: Sequence[Arg], key: Arg | None = None) -> Any:
        """Run one plain command on the master of ``key``'s slot (slot 0's for None)."""
        if not self._ready:
            await self._initialize()
        slot = None if key is None else key_slot(_encode(key))
        reply = (await self._execute([_Request(slot, core.pack_command(args), True)], None))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise backend_error(reply) from reply
        return reply

    def close(self) -> None:
        """Close every pipe (those of event loops already closed are just dropped)."""
        for nodes in self._pipes.values():
            for pipes in nodes.values():
                pipes.close(redis.ConnectionError("the session manager was closed"))
        self._pipes.clear()
        self._refresh_locks.clear()
