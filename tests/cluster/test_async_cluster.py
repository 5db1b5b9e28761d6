"""AsyncRedisSessions on a real Redis Cluster (3 masters + 3 replicas): every async operation
through a redis.asyncio.RedisCluster client and through one node's URL, keys spread over every
master, the ASGI middleware through Starlette's test client, concurrent calls on one loop (one
connection per node), and a slot moved mid-run (ASK, then MOVED) followed."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from redis_sessions import keys
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.async_cluster_wire import AsyncClusterWire
from redis_sessions.errors import ReplicationTimeout, ValidationError

from .conftest import Cluster, cache_follows_writes_of_another, keys_per_master, move_slot, spy_redirections

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

APP = "aclapp"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(params=["client", "url"])
def acrs(request, cluster: Cluster, cluster_ns: str) -> Iterator[AsyncRedisSessions]:
    """A cluster-layout async manager through a redis.asyncio.RedisCluster, or one node's URL."""
    client = redis.asyncio.RedisCluster.from_url(cluster.url, socket_timeout=5)
    target = client if request.param == "client" else cluster.url
    manager = AsyncRedisSessions(target, layout="cluster", namespace=cluster_ns, wipe=0)
    assert isinstance(manager._wire, AsyncClusterWire)
    yield manager

    async def close() -> None:
        await manager.close()
        try:
            await client.aclose()
        except RuntimeError:  # a test client's closed loop loaded the map: its sockets are gone
            pass

    run(close())


def test_every_operation(acrs: AsyncRedisSessions) -> None:
    async def main() -> None:
        token = await acrs.create(APP, "alice", "10.0.0.1", ttl=600, d={"a": 1})
        assert keys.token_bucket(token) == keys.user_bucket("alice")
        assert (await acrs.get(APP, token))["d"] == {"a": 1}
        assert (await acrs.set(APP, token, {"b": [1, 2], "a": None}))["d"] == {"b": [1, 2]}
        second = await acrs.create(APP, "alice", "10.0.0.2", max_sessions=1)
        assert await acrs.get(APP, token) is None
        assert (await acrs.get(APP, second))["id"] == "alice"
        await asyncio.gather(*(acrs.create(APP, f"user{i}", "10.0.0.3") for i in range(40)))
        assert await acrs.activity(APP, 600) == 41
        listed = await acrs.soapp(APP, 600)
        assert len(listed) == 41 and len({s["token"] for s in listed}) == 41
        assert [s["token"] for s in await acrs.soid(APP, "alice")] == [second]
        assert await acrs.kill(APP, second) == 1 and await acrs.kill(APP, second) == 0
        assert await acrs.killsoid(APP, "user1") == 1
        anonymous = await acrs.create_anonymous(APP, {"cart": [3]}, 600)
        assert (await acrs.load(APP, anonymous))["d"] == {"cart": [3]}
        changed = await acrs.apply_changes(APP, anonymous, [b'"n"', b"1"], anonymous=True)
        assert changed["d"] == {"cart": [3], "n": 1}
        user = await acrs.upgrade(APP, anonymous, "bob", "10.0.0.4", 600)
        assert user["id"] == "bob" and user["d"] == {"cart": [3], "n": 1}
        assert await acrs.load(APP, anonymous) == {"id": None, "rotated": True}
        renewed = await acrs.regenerate(APP, user["token"], "10.0.0.4")
        assert renewed["d"] == {"cart": [3], "n": 1}
        assert await acrs.get(APP, user["token"]) is None
        assert "d" not in await acrs.upgrade(APP, renewed["token"], "carol", "10.0.0.5", 600)
        assert await acrs.wipe() == 0
        assert await acrs.ping() is True
        assert await acrs.killall(APP) == 40  # user0..39 but user1, and carol
        assert await acrs.activity(APP, 600) == 0 and await acrs.soapp(APP, 600) == []

    run(main())


def test_keys_spread_over_every_master(cluster: Cluster, acrs: AsyncRedisSessions,
                                       cluster_ns: str) -> None:
    async def main() -> None:
        await asyncio.gather(*(acrs.create(APP, f"spread{i}", "10.0.0.1") for i in range(200)))

    run(main())
    counts = keys_per_master(cluster, cluster_ns)
    assert len(counts) == 3 and all(n > 100 for n in counts), counts


def test_concurrent_calls_share_one_connection_per_master(cluster: Cluster,
                                                         cluster_ns: str) -> None:
    # a URL: the manager's own client, whose redis-py connections close once the map is loaded
    manager = AsyncRedisSessions(f"{cluster.url}?client_name=rs-acl-one", layout="cluster",
                                 namespace=cluster_ns, wipe=0)

    async def main() -> tuple[list[str], list[int]]:
        tokens = await asyncio.gather(
            *(manager.create(APP, f"many{i}", "10.0.0.1") for i in range(60)))
        token = tokens[0]
        await asyncio.gather(*(manager.set(APP, token, {f"k{i}": i}) for i in range(200)),
                             *(manager.get(APP, t) for t in tokens))
        named = []
        for node in cluster.masters():
            sync = node.client()
            named.append([c["name"] for c in sync.client_list()].count("rs-acl-one"))
            sync.close()
        assert len((await manager.get(APP, token))["d"]) == 200
        await manager.close()
        return tokens, named

    tokens, named = run(main())
    assert len(set(tokens)) == 60
    assert named == [1, 1, 1]  # one pipe per master


def test_the_asgi_middleware_through_the_cluster(acrs: AsyncRedisSessions) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def view(request: Request) -> PlainTextResponse:
        session = request.session
        path = request.url.path
        if path == "/login":
            await session.upgrade("dave")
        elif path == "/add":
            session["items"] = session.get("items", 0) + 1
        return PlainTextResponse(f"{session.user_id}:{session.get('items')}")

    app = SessionMiddleware(Starlette(routes=[Route("/{path:path}", view)]), app_name=APP,
                            sessions=acrs)
    with TestClient(app) as browser:
        assert browser.get("/add").text == "None:1"  # anonymous, stored
        assert browser.get("/add").text == "None:2"
        assert browser.get("/login").text == "dave:2"  # the anonymous data moved to dave's slot
        assert browser.get("/add").text == "dave:3"
    assert [s["d"] for s in run(acrs.soid(APP, "dave"))] == [{"items": 3}]


def test_the_cache_is_invalidated_through_the_cluster(acrs: AsyncRedisSessions, cluster: Cluster,
                                                     cluster_ns: str) -> None:
    """cache_time with a cluster (a client or a URL): the listener's blocking RedisCluster,
    built from the async client's nodes, hears the other manager's writes."""
    # activity_resolution=0: every get that reaches Redis runs the function (r counts it)
    options = {"layout": "cluster", "namespace": cluster_ns, "wipe": 0, "cache_time": 60,
               "activity_resolution": 0}
    cached = AsyncRedisSessions(acrs.client if not acrs._owns_client else cluster.url, **options)
    other = AsyncRedisSessions(cluster.url, **options)

    async def main() -> None:
        try:
            await cache_follows_writes_of_another(cached, other, APP)
        finally:
            await cached.close()
            await other.close()

    run(main())
    assert cached._twin is not None and cached._twin._client is None  # closed


def test_replicated_durability_waits_for_each_masters_replica(cluster: Cluster,
                                                               cluster_ns: str) -> None:
    """Each master has one replica: WAIT 1 is met on every master of a fan-out; WAIT 2 times
    out with one acknowledgement, as ReplicationTimeout."""
    def manager(replicas: int) -> AsyncRedisSessions:
        return AsyncRedisSessions(cluster.url, layout="cluster", namespace=cluster_ns, wipe=0,
                                  durability="replicated", replicas=replicas, timeout_ms=2000
                                  if replicas == 1 else 50)

    one, two = manager(1), manager(2)

    async def main() -> None:
        try:
            tokens = await asyncio.gather(*(one.create(APP, f"dur{i}", "10.0.0.1")
                                            for i in range(30)))
            assert await one.kill(APP, tokens[0]) == 1
            with pytest.raises(ReplicationTimeout) as caught:
                await two.create(APP, "dur-x", "10.0.0.1")
            assert caught.value.acknowledged == 1
            with pytest.raises(ReplicationTimeout) as caught:
                await two.kill(APP, tokens[1])
            assert caught.value.acknowledged == 1
            assert caught.value.reply == 1  # the kill's own reply, as on one Redis
            with pytest.raises(ReplicationTimeout):  # a fan-out over every master
                await two.killall(APP)
            assert await one.killall(APP) == 0  # done, only not replicated to two replicas
        finally:
            await one.close()
            await two.close()

    run(main())


def test_nodes_layout_is_refused_for_a_cluster_client(cluster: Cluster) -> None:
    client = redis.asyncio.RedisCluster.from_url(cluster.url)
    with pytest.raises(ValidationError, match='layout="cluster"'):
        AsyncRedisSessions(client, wipe=0)
    run(client.aclose())


def test_nodes_layout_on_a_cluster_nodes_client_is_refused_by_ping(cluster: Cluster) -> None:
    """A plain client to one cluster node passes the constructor; ping() finds the node out, as
    RedisSessions.ping() does."""
    async def main() -> None:
        node = redis.asyncio.Redis.from_url(cluster.url)
        manager = AsyncRedisSessions(node, wipe=0)
        try:
            with pytest.raises(ValidationError, match='layout="cluster"'):
                await manager.ping()
        finally:
            await manager.close()
            await node.aclose()

    run(main())


def test_a_slot_moved_mid_run_is_followed(cluster: Cluster, cluster_ns: str) -> None:
    """A slot migrated by hand while concurrent get/set run on its sessions in one loop: ASK
    during the move, MOVED after it, nothing lost (test_cluster.py's blocking test, awaited)."""
    client = redis.asyncio.RedisCluster.from_url(cluster.url, socket_timeout=5)
    acrs = AsyncRedisSessions(client, layout="cluster", namespace=cluster_ns, wipe=0)
    user = "mover"
    ctx = acrs._app(APP).of_user(user)
    slot = redis.crc.key_slot(ctx.keys[0].encode())
    redirections = spy_redirections(acrs._wire)

    async def load(tokens: list[str], stop: asyncio.Event, errors: list[Exception]) -> None:
        i = 0
        while not stop.is_set():
            token = tokens[i % len(tokens)]
            i += 1
            try:
                got, saved = await asyncio.gather(acrs.get(APP, token),
                                                  acrs.set(APP, token, {"n": i}))
                assert got is not None and saved is not None
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

    def move(source, target) -> None:
        move_slot(cluster, slot, source, target)  # (in a thread)

    async def main() -> list[Exception]:
        tokens = [await acrs.create(APP, user, "10.0.0.1", d={"n": 0}) for _ in range(20)]
        owner = acrs._wire.nodes.get_node_from_slot(slot)
        source = next(n for n in cluster.masters() if n.port == owner.port)
        target = next(n for n in cluster.masters() if n is not source)
        stop = asyncio.Event()
        errors: list[Exception] = []
        loads = [asyncio.create_task(load(tokens, stop, errors)) for _ in range(4)]
        try:
            await asyncio.to_thread(move, source, target)
        finally:
            stop.set()
            await asyncio.gather(*loads)
        assert len(await acrs.soid(APP, user)) == 20
        assert await acrs.killsoid(APP, user) == 20
        await acrs.close()
        await client.aclose()
        return errors

    errors = run(main())
    assert errors == []
    assert "MOVED" in redirections and ("ASK" in redirections or "TRYAGAIN" in redirections)
