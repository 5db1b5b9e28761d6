"""Issue 17, items 5 and 6 on the async wire: a durable write's WAIT must not hold up the other
coroutines' calls; a connection reset while a retry-safe call is in flight is retried, and a
server that became a replica (READONLY) is left for the new master, as the blocking wire does.
The reset and the switch go through a loopback forwarder (proxy.py) in front of real servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.errors import ReplicationTimeout

from ..redis_server import RedisServer
from .proxy import Proxy
from .users import APP, IP

WAIT_MS = 1500


def wait_until(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def replicate(replica: RedisServer, master: RedisServer) -> None:
    """``replica`` REPLICAOF ``master``, returning once it is in sync."""
    source = redis.Redis.from_url(master.url)
    source.config_set("repl-diskless-sync-delay", 0)  # (5 s by default)
    source.close()
    client = redis.Redis.from_url(replica.url)
    client.replicaof("127.0.0.1", master.port)
    wait_until(lambda: client.info("replication").get("master_link_status") == "up",
               f"{replica.port} to sync from {master.port}")
    client.close()


def promote(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    client.replicaof("NO", "ONE")
    client.close()


@pytest.fixture
def pair():
    """A master and a replica of it, servers of this test alone."""
    master, replica = RedisServer().start(), RedisServer().start()
    try:
        replicate(replica, master)
        yield master, replica
    finally:
        for server in (replica, master):
            if server.process is not None:
                server.resume()
            server.stop()


def test_a_durable_write_waiting_for_a_stopped_replica_does_not_stall_reads(pair, namespace):
    """Item 5: with durability="replicated" and the replica stopped, each create() waits
    WAIT_MS and raises ReplicationTimeout; the get() calls of the other coroutines meanwhile
    must neither fail nor wait behind the WAIT."""
    master, replica = pair

    async def scenario() -> tuple[int, int, int, float]:
        client = redis.asyncio.Redis.from_url(master.url, socket_timeout=5)
        ars = AsyncRedisSessions(client, namespace=namespace, wipe=0, durability="replicated",
                                 replicas=1, timeout_ms=WAIT_MS)
        tokens = [await ars.create(APP, f"user{n}", IP, d={"owner": f"user{n}"})
                  for n in range(8)]
        replica.pause()
        stop = time.monotonic() + 3.0
        timeouts = reads = failed = 0
        slowest = 0.0

        async def writer(n: int) -> None:
            nonlocal timeouts
            while time.monotonic() < stop:
                try:
                    await ars.create(APP, f"writer{n}", IP)
                except ReplicationTimeout:
                    timeouts += 1

        async def reader(n: int) -> None:
            nonlocal reads, failed, slowest
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    session = await ars.get(APP, tokens[n])
                    assert session["id"] == f"user{n}"
                    reads += 1
                except Exception:  # noqa: BLE001 - counted: none may fail
                    failed += 1
                slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(3)),
                                                  *(reader(n) for n in range(8))), 30)
        finally:
            replica.resume()
            await ars.close()
            await client.aclose()
        return timeouts, reads, failed, slowest

    timeouts, reads, failed, slowest = asyncio.run(scenario())
    print(f"durable writes with a stopped replica: {timeouts} ReplicationTimeout, {reads} reads, "
          f"{failed} reads failed, slowest read {slowest:.3f} s (WAIT {WAIT_MS} ms)")
    assert timeouts > 0, "no write waited for the replica"
    assert failed == 0, f"{failed} get() calls failed behind the WAITs"
    # not a speed figure: a read queued behind a WAIT takes the WAIT's whole timeout
    assert slowest < WAIT_MS / 2000, f"a get() waited {slowest:.2f} s behind a WAIT"


def manager_on(kind: str, url: str, namespace: str):
    if kind == "blocking":
        return RedisSessions(redis.Redis.from_url(url, socket_timeout=5), namespace=namespace,
                             wipe=0)
    return AsyncRedisSessions(redis.asyncio.Redis.from_url(url, socket_timeout=5),
                              namespace=namespace, wipe=0)


async def call(manager, name: str, *args, **kwargs):
    """``manager.name(*args)``, awaited when the manager is async."""
    result = getattr(manager, name)(*args, **kwargs)
    return await result if asyncio.iscoroutine(result) else result


async def close(manager) -> None:
    result = manager.close()
    if asyncio.iscoroutine(result):
        await result


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_a_reset_connection_is_retried_for_a_retry_safe_call(chaos_url, chaos_ns, kind):
    """Item 6: the connection is reset (RST) while get() is in flight; get() is retry-safe, so
    it is sent again on a new connection, on both wires (the async one retried only
    redis.ConnectionError, not ConnectionResetError)."""
    proxy = Proxy(int(chaos_url.rsplit(":", 1)[1].split("/")[0]))

    async def scenario() -> None:
        manager = manager_on(kind, proxy.url, chaos_ns)
        try:
            token = await call(manager, "create", APP, "alice", IP, d={"owner": "alice"})
            proxy.reset_next()
            session = await call(manager, "get", APP, token)
            assert proxy.resets == 1
            assert session["id"] == "alice"
        finally:
            await close(manager)

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_a_master_turned_replica_is_left_for_the_new_master(pair, namespace, kind):
    """Item 6: Sentinel-style switches: the old master becomes a replica of the other server
    (REPLICAOF) and the address the clients use now leads to the new master, then back. A write
    on a connection still open to the old master gets READONLY (nothing was written): the wire
    drops that connection and sends the write once more on a new one, as the blocking wire does."""
    first, second = pair
    proxy = Proxy(first.port)

    def switch(old: RedisServer, new: RedisServer) -> None:
        direct = redis.Redis.from_url(old.url)
        assert direct.wait(1, 5000) == 1  # the replica has every write (and the library)
        direct.close()
        promote(new)
        replicate(old, new)
        proxy.retarget(new.port)

    async def scenario() -> None:
        manager = manager_on(kind, proxy.url, namespace)
        try:
            token = await call(manager, "create", APP, "alice", IP, d={"owner": "alice"})
            for n, (old, new) in enumerate([(first, second), (second, first)]):
                switch(old, new)
                session = await call(manager, "set", APP, token, {"v": n})
                assert (session["id"], session["d"]["v"]) == ("alice", n)
        finally:
            await close(manager)

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
