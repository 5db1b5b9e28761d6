"""Failover runs shared by the tests and bench/scale.py: creates go on from a few threads while
a master is replaced; afterwards every acknowledged create (a token returned) is looked up."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from redis.sentinel import Sentinel

from redis_sessions import RedisSessions
from redis_sessions.errors import SessionError

APP = "foapp"


@dataclass
class Run:
    acked: dict[str, str] = field(default_factory=dict)  # user -> token
    failed: int = 0  # calls that raised (not acknowledged: the caller knows)
    lost: int = 0  # acknowledged creates missing afterwards
    seconds: float = 0.0

    def row(self) -> str:
        return (f"{len(self.acked)} acknowledged, {self.lost} lost, {self.failed} refused or "
                f"timed out, {self.seconds:.1f}s")


def _creates(manager: RedisSessions, prefix: str, stop: threading.Event, run: Run,
             lock: threading.Lock) -> None:
    n = 0
    while not stop.is_set():
        user = f"{prefix}-{n}"
        n += 1
        try:
            token = manager.create(APP, user, "10.0.0.1")
        except SessionError:
            with lock:
                run.failed += 1
            continue
        with lock:
            run.acked[user] = token


def under_load(manager: RedisSessions, action, threads: int = 4, after: int = 300) -> Run:
    """Run creates from ``threads`` threads; once ``after`` are acknowledged, ``action()``
    (the failover: returns when it is over); then as many again; count the lost ones."""
    run, lock, stop = Run(), threading.Lock(), threading.Event()
    workers = [threading.Thread(target=_creates, args=(manager, f"t{i}-{time.time_ns()}", stop,
                                                        run, lock)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        while len(run.acked) < after:
            time.sleep(0.01)
        action()
        target = len(run.acked) + after
        deadline = time.monotonic() + 30
        while len(run.acked) < target and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    run.seconds = time.monotonic() - started
    run.lost = sum(1 for token in run.acked.values() if manager.get(APP, token) is None)
    return run


def sentinel_failover(group) -> None:
    """SENTINEL FAILOVER, returning once the sentinels name the new master and the old one
    has become its replica."""
    sentinel = group.sentinels[0].client()
    old = sentinel.sentinel_get_master_addr_by_name(group.name)
    sentinel.execute_command("SENTINEL", "FAILOVER", group.name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sentinel.sentinel_get_master_addr_by_name(group.name)
        if new and tuple(new) != tuple(old):
            old_node = group.master if group.master.port == int(old[1]) else group.replica
            if old_node.client().info("replication").get("role") == "slave":
                return
        time.sleep(0.05)
    raise RuntimeError("the sentinels did not fail over")


def sentinel_manager(group, namespace: str, durability: str | None) -> RedisSessions:
    sentinel = Sentinel(group.addresses(), socket_timeout=2)
    client = sentinel.master_for(group.name, socket_timeout=5)
    return RedisSessions(client, namespace=namespace, wipe=0, durability=durability,
                         replicas=1, timeout_ms=500)
