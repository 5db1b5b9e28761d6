"""Helpers of the cluster and Sentinel tests. The groups themselves (``Cluster``,
``SentinelGroup``) live in tests/redis_cluster.py, and the ``cluster`` fixture in tests/conftest.py,
so the chaos suite starts the same one cluster of the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ..redis_cluster import Cluster, SentinelGroup, _wait  # noqa: F401 (the tests import them here)


def move_slot(cluster: Cluster, slot: int, source: Any, target: Any) -> None:
    """Migrate ``slot`` by hand from ``source`` to ``target`` (MIGRATING/IMPORTING, MIGRATE a few
    keys at a time, SETSLOT NODE on every master): a load running meanwhile meets the slot half
    moved (ASK, TRYAGAIN) and then moved (MOVED)."""
    src, dst = source.client(), target.client()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
    while keys_left := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 5):
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys_left)
        time.sleep(0.05)
    for node in cluster.masters():
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id(target))
    time.sleep(0.3)


def keys_per_master(cluster: Cluster, namespace: str) -> list[int]:
    """How many keys of ``namespace`` each master holds."""
    counts = []
    for node in cluster.masters():
        client = node.client()
        counts.append(sum(1 for _ in client.scan_iter(match=f"{namespace}:*", count=1000)))
        client.close()
    return counts


def spy_redirections(wire: Any) -> list[str]:
    """The kinds of redirection (MOVED, ASK, TRYAGAIN, ...) a cluster wire follows from now on,
    in order: its ``_redirected`` is wrapped to record them."""
    seen: list[str] = []
    follow = wire._redirected

    def recording(request: Any, reply: object) -> bool:
        if follow(request, reply):
            seen.append(str(reply).split()[0])
            return True
        return False

    wire._redirected = recording
    return seen


def node_id(node: Any) -> str:
    return node.client().execute_command("CLUSTER", "MYID").decode()


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield group.start()
    finally:
        group.stop()


async def cache_follows_writes_of_another(cached: Any, other: Any, app: str) -> None:
    """``cached`` (an async manager with cache_time) serves a repeated get() from its cache (the
    read count ``r`` does not move), and drops it when ``other`` writes the session: the
    invalidation message crossed the Sentinel master or the cluster."""
    import asyncio

    token = await other.create(app, "cachy", "10.0.0.1", d={"a": 1})
    for _ in range(250):  # until the listener's subscription is confirmed
        await cached.get(app, token)
        if cached.cache._listening:
            break
        await asyncio.sleep(0.02)
    assert cached.cache._listening, "the cache's subscription was never confirmed"
    first = await cached.get(app, token)
    assert await cached.get(app, token) == first  # cached: r not incremented by a second read
    assert (await other.get(app, token))["r"] == first["r"] + 1  # Redis saw one read of those
    await other.set(app, token, {"a": 2})
    for _ in range(250):
        if (await cached.get(app, token))["d"] == {"a": 2}:
            break
        await asyncio.sleep(0.02)
    assert (await cached.get(app, token))["d"] == {"a": 2}
    await other.kill(app, token)
    for _ in range(250):
        if await cached.get(app, token) is None:
            break
        await asyncio.sleep(0.02)
    assert await cached.get(app, token) is None  # a logout is honoured by the other cache
