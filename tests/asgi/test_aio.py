"""AsyncRedisSessions: the manager's API as coroutines over one pipelined connection per loop."""

import asyncio
import time

import pytest
import redis.asyncio

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.errors import (
    BackendUnavailable,
    ReplicationTimeout,
    ValidationError,
)


def run(coro):
    return asyncio.run(coro)


def test_the_api_matches_the_blocking_manager(ars, rs):
    async def main():
        token = await ars.create("app", "ann", "1.2.3.4", 100, {"a": 1})
        assert rs.get("app", token)["d"] == {"a": 1}  # the same layout, read by the other one
        assert (await ars.get("app", token))["id"] == "ann"
        assert (await ars.set("app", token, {"b": [1, 2], "a": None}))["d"] == {"b": [1, 2]}
        assert [s["token"] for s in await ars.soid("app", "ann")] == [token]
        assert len(await ars.soapp("app", 600)) == 1
        assert await ars.activity("app", 600) == 1
        anonymous = await ars.create_anonymous("app", {"cart": 1}, 100)
        assert (await ars.load("app", anonymous))["d"] == {"cart": 1}
        assert await ars.get("app", anonymous) is None  # get() sees user sessions only
        user = await ars.upgrade("app", anonymous, "bob", "1.2.3.4", 100)
        assert user["id"] == "bob" and user["d"] == {"cart": 1}
        assert (await ars.load("app", anonymous))["rotated"]
        again = await ars.regenerate("app", user["token"], "1.2.3.4")
        assert again["token"] != user["token"] and again["d"] == {"cart": 1}
        assert await ars.kill("app", again["token"]) == 1
        assert await ars.killsoid("app", "ann") == 1
        await ars.create("app", "cid", "1.2.3.4", 100)
        assert await ars.killall("app") == 1
        assert await ars.wipe() == 0
        assert await ars.ping() is True
        with pytest.raises(ValidationError):
            await ars.get("app", "not a token")

    run(main())


def test_concurrent_calls_share_one_connection_and_lose_nothing(redis_url, namespace, rs,
                                                                redis_client):
    client = redis.asyncio.Redis.from_url(redis_url, client_name="rs-aio-one")
    manager = AsyncRedisSessions(client, namespace=namespace, wipe=0)

    async def main():
        token = await manager.create("app", "ann", "1.2.3.4", 100)
        await asyncio.gather(*[manager.set("app", token, {f"k{i}": i}) for i in range(300)])
        clients = redis_client.client_list()
        await manager.close()
        await client.aclose()
        return token, clients

    token, clients = run(main())
    assert len(rs.get("app", token)["d"]) == 300
    assert [c["name"] for c in clients].count("rs-aio-one") == 1


def test_a_library_flushed_from_the_server_is_loaded_again(ars, redis_client):
    async def main():
        token = await ars.create("app", "ann", "1.2.3.4", 10)
        redis_client.function_flush()
        assert (await ars.get("app", token))["id"] == "ann"
        redis_client.function_flush()
        await asyncio.sleep(0)
        return token

    run(main())
    # a wipe runs the kill script pipelined for many sessions (Calls): each finds it missing;
    # these sessions' hashes are gone (as if Redis expired them): each counts as removed
    tokens = [run(ars.create("app", "bob", "1.2.3.4", 10)) for _ in range(3)]
    for token in tokens:
        redis_client.delete(ars.keys.session_prefix("app") + token)
        redis_client.zadd(ars.keys.expiry, {f"app:{token}:bob": 1})
    redis_client.function_flush()
    assert run(ars.wipe()) == 3


def test_reconnects_after_a_restart_and_times_out_on_a_stuck_server(own_server):
    client = redis.asyncio.Redis.from_url(own_server.url, socket_timeout=0.5)
    manager = AsyncRedisSessions(client, namespace="down", wipe=0)

    async def main():
        token = await manager.create("app", "ann", "1.2.3.4", 100)
        own_server.restart()  # the open connection is dropped: the next call reconnects
        assert await manager.get("app", token) is None  # (an empty server)
        own_server.stop()
        with pytest.raises(BackendUnavailable):
            await manager.get("app", token)
        own_server.start()
        token = await manager.create("app", "ann", "1.2.3.4", 100)
        own_server.pause()
        try:
            results = await asyncio.gather(*[manager.get("app", token) for _ in range(5)],
                                           return_exceptions=True)
        finally:
            own_server.resume()
        assert all(isinstance(r, BackendUnavailable) for r in results)
        assert (await manager.get("app", token))["id"] == "ann"
        await manager.close()

    run(main())
    # the blocking manager agrees on what is stored
    with RedisSessions(own_server.url, namespace="down", wipe=0) as sync:
        assert sync.soid("app", "ann")


def test_one_manager_serves_several_event_loops(ars):
    token = run(ars.create("app", "ann", "1.2.3.4", 100))
    for _ in range(3):  # a test client's loop per request, say
        assert run(ars.get("app", token))["id"] == "ann"


def test_a_blocking_client_is_refused(redis_url):
    import redis as sync_redis

    with pytest.raises(TypeError):
        AsyncRedisSessions(sync_redis.Redis.from_url(redis_url))


def test_cache_with_pubsub_invalidation(redis_url, namespace, rs):
    manager = AsyncRedisSessions(redis_url, namespace=namespace, wipe=0, cache_time=60)

    async def main():
        token = await manager.create("app", "ann", "1.2.3.4", 100, {"a": 1})
        for _ in range(200):  # until the listener's subscription is confirmed
            await manager.get("app", token)
            if manager.cache._listening:
                break
            await asyncio.sleep(0.02)
        await manager.get("app", token)  # cached now
        rs.set("app", token, {"a": 2})  # another process: its message drops the entry
        for _ in range(200):
            if (await manager.get("app", token))["d"] == {"a": 2}:
                break
            await asyncio.sleep(0.02)
        assert (await manager.get("app", token))["d"] == {"a": 2}
        await manager.close()

    run(main())


def test_the_cluster_layout_on_one_server(redis_url, namespace):
    """Through a redis.asyncio.Redis client; a URL with layout="cluster" means a Redis Cluster,
    so a plain server's is refused, as the blocking manager refuses it (README, "Scale")."""
    client = redis.asyncio.Redis.from_url(redis_url)
    manager = AsyncRedisSessions(client, namespace=namespace, wipe=0, layout="cluster")

    async def main():
        token = await manager.create("app", "ann", "1.2.3.4", 100, {"a": 1})
        assert (await manager.get("app", token))["d"] == {"a": 1}
        assert [s["token"] for s in await manager.soid("app", "ann")] == [token]
        assert await manager.killsoid("app", "ann") == 1
        await manager.close()
        await client.aclose()

    run(main())
    with pytest.raises(BackendUnavailable, match="pass a redis.Redis client") as blocking:
        RedisSessions(redis_url, namespace=namespace, wipe=0, layout="cluster")
    by_url = AsyncRedisSessions(redis_url, namespace=namespace, wipe=0, layout="cluster")

    async def refused():
        try:
            with pytest.raises(BackendUnavailable, match="redis.asyncio.Redis") as caught:
                await by_url.create("app", "ann", "1.2.3.4", 100)
            with pytest.raises(BackendUnavailable):  # every call, not just the first
                await by_url.ping()
            return caught.value
        finally:
            await by_url.close()

    assert str(run(refused())) == str(blocking.value)


def test_replicated_durability_times_out_without_enough_replicas(redis_url, namespace, rs):
    """The private server has no replica: WAIT for 2 returns 0 after timeout_ms, and every
    writing step raises ReplicationTimeout, as the blocking manager's do."""
    durable = AsyncRedisSessions(redis_url, namespace=namespace, wipe=0,
                                 durability="replicated", replicas=2, timeout_ms=30)
    token = rs.create("app", "ann", "1.2.3.4", 100)

    async def main():
        assert (await durable.get("app", token))["id"] == "ann"  # reads do not wait
        with pytest.raises(ReplicationTimeout) as caught:  # set waits (issue 18)
            await durable.set("app", token, {"a": 1})
        assert caught.value.reply is not None  # done on the master, not acknowledged
        started = time.monotonic()
        with pytest.raises(ReplicationTimeout) as caught:
            await durable.create("app", "bob", "1.2.3.4", 100)
        assert time.monotonic() - started >= 0.025  # WAIT waited its timeout
        assert caught.value.acknowledged == 0
        with pytest.raises(ReplicationTimeout) as caught:
            await durable.kill("app", token)
        assert caught.value.reply == 1  # done on the master, not acknowledged
        with pytest.raises(ReplicationTimeout):
            await durable.upgrade("app", None, "carol", "1.2.3.4", 100)
        with pytest.raises(ReplicationTimeout):
            await durable.killsoid("app", "bob")
        with pytest.raises(ReplicationTimeout):  # a fan-out (Calls): one WAIT after them all
            await durable.killall("app")
        await durable.close()

    run(main())
    assert rs.soapp("app", 600) == []  # the writes were done, only not replicated
    for bad in ({"durability": "sync"}, {"durability": "replicated", "replicas": 0},
                {"durability": "replicated", "timeout_ms": 0}):
        with pytest.raises(ValidationError):
            AsyncRedisSessions(redis_url, **bad)


def test_iter_soapp_and_iter_soid_page_as_the_blocking_ones(ars, rs):
    tokens = [rs.create("app", f"user{i % 5}", "1.2.3.4", 100) for i in range(23)]
    extra = [rs.create("app", "many", "1.2.3.4", 100) for _ in range(11)]

    async def listed(iterator):
        return [s["token"] async for s in iterator]

    async def main():
        newest_first = await listed(ars.iter_soapp("app", 600, page=4))
        assert newest_first == [s["token"] for s in rs.iter_soapp("app", 600, page=4)]
        assert sorted(newest_first) == sorted(tokens + extra)  # each once, over 9 pages
        assert newest_first == [s["token"] for s in await ars.soapp("app", 600)]
        mine = await listed(ars.iter_soid("app", "many", page=2))
        assert sorted(mine) == sorted(extra)
        assert sorted(mine) == sorted(s["token"] for s in rs.iter_soid("app", "many", page=2))
        assert await listed(ars.iter_soid("app", "nobody")) == []
        with pytest.raises(ValidationError):
            await listed(ars.iter_soapp("app", 600, page=0))
        with pytest.raises(ValidationError):
            await listed(ars.iter_soid("app", "many", page=0))

    run(main())


def test_the_connections_of_closed_event_loops_are_dropped(redis_url, namespace, redis_client):
    client = redis.asyncio.Redis.from_url(redis_url, client_name="rs-aio-loops")
    manager = AsyncRedisSessions(client, namespace=namespace, wipe=0)

    def connected() -> int:
        return [c["name"] for c in redis_client.client_list()].count("rs-aio-loops")

    def settles_at(n: int) -> bool:  # the server sees a shut-down socket a moment later
        for _ in range(500):
            if connected() == n:
                return True
            time.sleep(0.01)
        return False

    token = run(manager.create("app", "ann", "1.2.3.4", 100))
    for _ in range(5):  # a new event loop each time, as a test client's per request
        run(manager.get("app", token))
    assert len(manager._wire._pipes) <= 2  # the last loop's, and the one before until pruned
    # asyncio.run() cancels the reader task at the end, which closes the connection
    assert settles_at(0)

    async def idle_loop_left_open() -> None:
        await manager.get("app", token)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(idle_loop_left_open())  # its reader task is still pending
    assert settles_at(1)
    loop.close()
    run(manager.close())  # the pipe of the closed loop is shut down
    assert settles_at(0)


def test_the_wiper_is_a_task_of_the_loop_and_stops_on_close(redis_url, namespace):
    manager = AsyncRedisSessions(redis_url, namespace=namespace, wipe=10)

    async def main():
        await manager.ping()
        assert manager._wiper is None  # ping runs no operation
        await manager.activity("app", 60)
        wiper = manager._wiper
        assert wiper is not None and not wiper.done()
        await manager.close()
        await asyncio.sleep(0)
        assert wiper.cancelled()

    run(main())
