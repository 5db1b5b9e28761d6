"""AsyncRedisSessions through ``redis.asyncio.Sentinel.master_for()`` (1 master, 1 replica, 3
sentinels): the local cache invalidated across two managers, its listener following a failover
to the new master, and ``durability="replicated"`` waiting for the one replica."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
import redis.asyncio

from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.errors import ReplicationTimeout

from .conftest import SentinelGroup, _wait, cache_follows_writes_of_another
from .runs import sentinel_failover

APP = "asntapp"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def make(sentinel_group: SentinelGroup) -> Iterator:
    """``make(**options)``: an async manager on the Sentinel master, in this test's namespace,
    closed afterwards (on the loop of the test's last ``run``)."""
    namespace = "rsas" + secrets.token_hex(4)
    made: list[tuple[AsyncRedisSessions, redis.asyncio.Redis]] = []

    def build(**options) -> AsyncRedisSessions:
        sentinel = redis.asyncio.Sentinel(sentinel_group.addresses(), socket_timeout=2)
        client = sentinel.master_for(sentinel_group.name, socket_timeout=5)
        made.append((AsyncRedisSessions(client, namespace=namespace, wipe=0, **options), client))
        return made[-1][0]

    yield build

    async def close() -> None:
        for manager, client in made:
            await manager.close()
            await client.aclose()

    run(close())


def _master(group: SentinelGroup):
    address = group.sentinels[0].client().sentinel_get_master_addr_by_name(group.name)
    return next(n for n in (group.master, group.replica) if n.port == int(address[1]))


def test_the_cache_is_invalidated_across_two_managers(make) -> None:
    # activity_resolution=0: every get that reaches Redis runs the function (r counts it)
    cached, other = (make(cache_time=60, activity_resolution=0),
                     make(cache_time=60, activity_resolution=0))
    run(cache_follows_writes_of_another(cached, other, APP))
    assert cached._twin is not None and cached._twin._sentinel is not None  # a Sentinel's


@pytest.mark.slow
def test_the_cache_listener_follows_a_failover(make, sentinel_group: SentinelGroup) -> None:
    """After SENTINEL FAILOVER both listeners subscribe on the new master (PUBSUB NUMSUB there),
    and invalidation still crosses between the managers."""
    # activity_resolution=0: every get that reaches Redis runs the function (r counts it)
    cached, other = (make(cache_time=60, activity_resolution=0),
                     make(cache_time=60, activity_resolution=0))
    channel = cached.keys.cache_channel

    def subscribers(node) -> int:
        return dict(node.client().pubsub_numsub(channel)).get(channel.encode(), 0)

    async def main() -> None:  # one loop: redis-py's async Sentinel clients are bound to it
        await cache_follows_writes_of_another(cached, other, APP)
        before = _master(sentinel_group)
        assert subscribers(before) == 2
        await asyncio.to_thread(sentinel_failover, sentinel_group)
        after = _master(sentinel_group)
        assert after is not before
        await asyncio.to_thread(_wait, lambda: subscribers(after) == 2,
                                "both listeners on the new master")
        await cache_follows_writes_of_another(cached, other, APP)

    run(main())


def test_replicated_durability_waits_for_the_replica(make, sentinel_group: SentinelGroup
                                                     ) -> None:
    master = _master(sentinel_group)
    _wait(lambda: int(master.client().info("replication")["connected_slaves"]) >= 1,
          "the replica to be connected", timeout=60)
    one = make(durability="replicated", replicas=1, timeout_ms=3000)
    two = make(durability="replicated", replicas=2, timeout_ms=50)

    async def main() -> None:
        token = await one.create(APP, "ann", "10.0.0.1")
        assert (await one.get(APP, token))["id"] == "ann"
        with pytest.raises(ReplicationTimeout) as caught:
            await two.create(APP, "bob", "10.0.0.1")
        assert caught.value.acknowledged == 1
        with pytest.raises(ReplicationTimeout) as caught:
            await two.killall(APP)
        assert caught.value.acknowledged == 1
        assert await one.soapp(APP, 600) == []

    run(main())
