"""A real Redis Cluster (3 masters + 3 replicas) and a Sentinel group (1 master, 1 replica, 3
sentinels) on free loopback ports, started once for the run in a temporary directory and torn
down at the end. Without redis-server and redis-cli on PATH the tests are skipped (with that
reason). Nothing here is mocked: a failover is a real process killed, or SENTINEL FAILOVER.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

# a short node timeout, so a killed master's replica takes over within a few seconds
NODE_TIMEOUT_MS = 1000


def _binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        pytest.skip("tests/cluster need redis-server and redis-cli on PATH (not found)")
    return server, cli


def _free_ports(count: int, bus: bool = False) -> list[int]:
    """``count`` free loopback ports (and, with ``bus``, each port + 10000 free too)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in ports or (bus and (port > 55000 or not _is_free(port + 10000))):
            continue
        ports.append(port)
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Node:
    """One redis-server process on a port, with its own directory."""

    def __init__(self, server: str, port: int, directory: Path, *extra: str) -> None:
        self.port = port
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                     "--save", "", "--appendonly", "no", "--daemonize", "no",
                     "--repl-diskless-sync-delay", "0", *extra]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        _wait(lambda: self.client().ping(), f"redis-server on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=1)

    def kill(self) -> None:
        """SIGKILL: the node dies without a word, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


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


class Cluster:
    """Six nodes, three masters each with one replica (``replicas=0``: three masters alone);
    ``url`` names one node."""

    def __init__(self, root: Path, replicas: int = 1) -> None:
        server, self.cli = _binaries()
        self.replicas = replicas
        ports = _free_ports(3 * (1 + replicas), bus=True)
        self.nodes = [
            Node(server, port, root / str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", str(root / str(port) / "nodes.conf"),
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
            for port in ports
        ]
        self.url = f"redis://127.0.0.1:{ports[0]}/0"

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self.wait_ok()
        if self.replicas:
            self.wait_replicated()
        return self

    def wait_replicated(self) -> None:
        """Every master has its replica, in sync."""
        def synced() -> bool:
            masters = self.masters()
            return len(masters) == 3 and all(
                m.client().info("replication").get("slave0", {}).get("state") == "online"
                for m in masters)

        _wait(synced, "every replica to sync", timeout=60)

    def wait_ok(self) -> None:
        """Every live node says cluster_state:ok and the slot map covers everything."""
        def ok() -> bool:
            for node in self.nodes:
                if node.alive:
                    info = node.client().cluster("info")
                    if info.get("cluster_state") != "ok":
                        return False
            return True

        _wait(ok, "cluster_state:ok", timeout=60)

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url, socket_timeout=5, socket_connect_timeout=1)

    def masters(self) -> list[Node]:
        """The live nodes that serve slots now (CLUSTER NODES as a live node sees it)."""
        by_port = {n.port: n for n in self.nodes}
        out = subprocess.run([self.cli, "-p", str(self.any_live().port), "cluster", "nodes"],
                             check=True, capture_output=True, text=True).stdout
        masters = []
        for line in out.splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                if port in by_port and by_port[port].alive:
                    masters.append(by_port[port])
        return masters

    def wait_failover(self) -> None:
        """After a master was killed: until its replica serves its slots (3 live masters)."""
        _wait(lambda: len(self.masters()) == 3, "a replica to take over", timeout=60)
        self.wait_ok()

    def any_live(self) -> Node:
        return next(n for n in self.nodes if n.alive)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    group = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def cluster_ns(cluster: Cluster) -> Iterator[str]:
    """A namespace of one test; its keys are deleted afterwards on every master."""
    ns = "rsc" + secrets.token_hex(4)
    yield ns
    for node in cluster.nodes:
        if node.alive:
            client = node.client()
            try:
                keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
                for key in keys:
                    client.delete(key)
            except redis.ResponseError:
                pass  # a replica refuses writes (READONLY): its master deletes
            finally:
                client.close()


class SentinelGroup:
    """A master, its replica and three sentinels watching them as ``mymaster``."""

    name = "mymaster"

    def __init__(self, root: Path) -> None:
        server, _ = _binaries()
        master_port, replica_port, *sentinel_ports = _free_ports(5)
        self.master = Node(server, master_port, root / "master")
        self.replica = Node(server, replica_port, root / "replica",
                            "--replicaof", "127.0.0.1", str(master_port))
        self.sentinels = []
        for port in sentinel_ports:
            directory = root / f"sentinel{port}"
            directory.mkdir(parents=True)
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {self.name} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {self.name} 1000\n"
                f"sentinel failover-timeout {self.name} 10000\n")
            node = Node(server, port, directory)
            node.args = [server, str(conf), "--sentinel"]
            self.sentinels.append(node)

    def start(self) -> SentinelGroup:
        self.master.start()
        self.replica.start()
        _wait(lambda: self.replica.client().info("replication")["master_link_status"] == "up",
              "the replica to sync")
        for sentinel in self.sentinels:
            sentinel.start()
        def known(sentinel: Node) -> int:
            info = sentinel.client().sentinel_master(self.name)
            return int(info["num-other-sentinels"])

        _wait(lambda: all(known(s) >= 2 for s in self.sentinels), "the sentinels to meet")
        return self

    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            node.stop()


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
