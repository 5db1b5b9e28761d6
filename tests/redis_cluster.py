"""Real Redis groups on free loopback ports, for the tests that need more than one server: a
Redis Cluster (3 masters + 3 replicas) and a Sentinel group (1 master, 1 replica, 3 sentinels),
each in a directory of its own. Without redis-server and redis-cli on PATH the tests that ask for
one are skipped (with that reason). Nothing here is mocked: a failover is a real process killed,
or SENTINEL FAILOVER. The fixtures are in tests/conftest.py (``cluster``, ``cluster_ns``) and
tests/cluster/conftest.py (``sentinel_group``).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

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


# Ports below the kernel's ephemeral range (32768 and up here), bus ports (+10000) included, so
# that no outgoing connection of a busy machine takes one between the choice and the start.
_PORTS = range(20000, 22768)


def _free_ports(count: int, bus: bool = False) -> list[int]:
    """``count`` free loopback ports (and, with ``bus``, each port + 10000 free too)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.choice(_PORTS)
        if port in ports or not _is_free(port) or (bus and not _is_free(port + 10000)):
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


class NodeDied(RuntimeError):
    """A server process ended while it was being waited for (its port was taken, say)."""


def _wait(check, what: str, timeout: float = 30.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NodeDied(f"{what}: the process exited with {process.returncode}")
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
        _wait(lambda: self.client().ping(), f"redis-server on port {self.port}",
              process=self.process)
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


class Cluster:
    """Six nodes, three masters each with one replica (``replicas=0``: three masters alone);
    ``url`` names one node."""

    def __init__(self, root: Path, replicas: int = 1) -> None:
        self.server, self.cli = _binaries()
        self.root = root
        self.replicas = replicas
        self._choose_ports()

    def _choose_ports(self) -> None:
        ports = _free_ports(3 * (1 + self.replicas), bus=True)
        self.nodes = [
            Node(self.server, port, self.root / str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", str(self.root / str(port) / "nodes.conf"),
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
            for port in ports
        ]
        self.url = f"redis://127.0.0.1:{ports[0]}/0"

    def start(self) -> Cluster:
        for attempt in range(3):  # a port taken meanwhile: other ports
            try:
                for node in self.nodes:
                    node.start()
                break
            except NodeDied:
                self.stop()
                if attempt == 2:
                    raise
                self._choose_ports()
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
