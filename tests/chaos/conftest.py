"""Fixtures of the chaos suite: a Redis server of its own (to pause, kill and restart without
disturbing the other tests), managers of the four wires on it or on the run's cluster.

Every scenario is bounded: it drives its users for ``SECONDS`` and joins its threads, tasks and
subprocesses with a timeout, failing (never hanging) when one does not finish. The suite is
marked ``slow`` (tests/conftest.py: SLOW_SUITES): it tests the wires' connection handling, the
same with either core, so CI runs it once (in the compiled pass).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
import redis.cluster

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions

from ..redis_server import RedisServer


@pytest.fixture(scope="session")
def chaos_server() -> Iterator[RedisServer]:
    """The chaos suite's own server: its scenarios pause, kill and restart it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chaos_url(chaos_server: RedisServer) -> str:
    if not chaos_server.running:  # a scenario that failed halfway through a restart
        chaos_server.start()
    return chaos_server.url


@pytest.fixture
def chaos_ns(chaos_url: str) -> Iterator[str]:
    """A namespace of one scenario on the chaos server; its keys are deleted afterwards."""
    ns = "rschaos" + secrets.token_hex(4)
    yield ns
    client = redis.Redis.from_url(chaos_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # a scenario restarted the server: nothing of it is left
    finally:
        client.close()


# The managers of the four wires, each over a client made here as users make theirs (the gevent
# runs import these too, in a process of their own).


def blocking_single(url: str, namespace: str, **options) -> RedisSessions:
    """The blocking wire on one server."""
    client = redis.Redis.from_url(url, socket_timeout=options.pop("socket_timeout", 5),
                                  socket_connect_timeout=2)
    return RedisSessions(client, namespace=namespace, wipe=0, **options)


def blocking_cluster(url: str, namespace: str, **options) -> RedisSessions:
    """The blocking cluster wire on the cluster of the node at ``url`` (the run's cluster)."""
    client = redis.cluster.RedisCluster.from_url(
        url, socket_timeout=options.pop("socket_timeout", 5), socket_connect_timeout=1)
    return RedisSessions(client, namespace=namespace, wipe=0, layout="cluster", **options)


def async_single(url: str, namespace: str, **options) -> AsyncRedisSessions:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=options.pop("socket_timeout", 5),
                                          socket_connect_timeout=2)
    return AsyncRedisSessions(client, namespace=namespace, wipe=0, **options)


def async_cluster(url: str, namespace: str, **options) -> AsyncRedisSessions:
    client = redis.asyncio.RedisCluster.from_url(
        url, socket_timeout=options.pop("socket_timeout", 5), socket_connect_timeout=1)
    return AsyncRedisSessions(client, namespace=namespace, wipe=0, layout="cluster", **options)


def close_async(manager: AsyncRedisSessions) -> None:
    asyncio.run(manager.close())
