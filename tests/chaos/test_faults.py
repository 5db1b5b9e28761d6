"""Faults under traffic, on every wire: connections killed (CLIENT KILL), the server stopped
for longer than the clients' socket timeout (SIGSTOP/SIGCONT), the server killed and restarted
on its port (all data lost: the checks then allow a session to vanish, never to change hands).
Calls may fail (BackendUnavailable); no reply may reach another caller."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from .conftest import async_cluster, async_single, blocking_cluster, blocking_single
from .drive import FaultLoop, adrive, client_kill, drive, in_threads
from .users import Deadline, Population, Tally, report

SECONDS = 2.5
WORKERS = 6
SOCKET_TIMEOUT = 0.3


def single_faults(server, restart: bool) -> dict:
    def pause() -> None:
        server.pause()
        time.sleep(2 * SOCKET_TIMEOUT)
        server.resume()

    faults = {"client kill": lambda: client_kill(server.url), "pause": pause}
    if restart:
        faults = {"restart": server.restart, **faults}
    return faults


def cluster_faults(cluster) -> dict:
    def kill_all() -> None:
        for node in cluster.masters():
            client_kill(f"redis://127.0.0.1:{node.port}/0")

    def pause() -> None:  # shorter than the node timeout: no failover
        node = cluster.masters()[0]
        node.process.send_signal(signal.SIGSTOP)
        time.sleep(0.4)
        node.process.send_signal(signal.SIGCONT)

    return {"client kill": kill_all, "pause": pause}


def check(name: str, tallies: list[Tally], clean: Tally, faults: FaultLoop) -> None:
    counts = ", ".join(f"{k} x{v}" for k, v in faults.counts.items())
    total = report(f"{name} ({counts})", tallies)
    clean = report(f"{name}, clean pass", [clean])
    assert sum(faults.counts.values()) > 0, "no fault was applied"
    assert (total.wrong, total.crashed) == (0, 0), total.samples
    assert (clean.wrong, clean.crashed, clean.failed) == (0, 0, 0), clean.samples + clean.failures


def blocking_scenario(name: str, make, faults: dict, volatile: bool = False) -> None:
    manager = make()
    pop = Population(users=3 * WORKERS, sessions=2)
    pop.create_all(manager)
    pop.volatile = volatile
    groups = pop.split(WORKERS)
    tallies = [Tally() for _ in range(WORKERS)]
    deadline = Deadline(SECONDS)
    with FaultLoop(faults, every=(0.1, 0.4)) as loop:
        in_threads([lambda i=i: drive(manager, pop, groups[i], deadline, tallies[i], seed=i)
                    for i in range(WORKERS)])
    manager.close()
    time.sleep(2 * SOCKET_TIMEOUT)
    fresh = make()
    clean = Tally()
    pop.verify(fresh, clean)
    fresh.close()
    check(name, tallies, clean, loop)


async def async_scenario(name: str, make, faults: dict, volatile: bool = False) -> None:
    manager = make()
    pop = Population(users=3 * WORKERS, sessions=2)
    await pop.acreate_all(manager)
    pop.volatile = volatile
    groups = pop.split(WORKERS)
    tallies = [Tally() for _ in range(WORKERS)]
    deadline = Deadline(SECONDS)
    with FaultLoop(faults, every=(0.1, 0.4)) as loop:
        await asyncio.wait_for(asyncio.gather(
            *(adrive(manager, pop, groups[i], deadline, tallies[i], seed=i)
              for i in range(WORKERS))), SECONDS + 20)
    await manager.close()
    await asyncio.sleep(2 * SOCKET_TIMEOUT)
    fresh = make()
    clean = Tally()
    await asyncio.wait_for(pop.averify(fresh, clean), 30)
    await fresh.close()
    check(name, tallies, clean, loop)


@pytest.mark.parametrize("restart", [False, True], ids=["kill-pause", "restart"])
def test_blocking_single(chaos_server, chaos_url, chaos_ns, restart):
    blocking_scenario(
        "blocking single faults", lambda: blocking_single(chaos_url, chaos_ns,
                                                           socket_timeout=SOCKET_TIMEOUT),
        single_faults(chaos_server, restart), volatile=restart)


def test_blocking_cluster(cluster, cluster_ns):
    blocking_scenario("blocking cluster faults",
                      lambda: blocking_cluster(cluster.url, cluster_ns, socket_timeout=SOCKET_TIMEOUT),
                      cluster_faults(cluster))
    cluster.wait_ok()


@pytest.mark.parametrize("restart", [False, True], ids=["kill-pause", "restart"])
def test_async_single(chaos_server, chaos_url, chaos_ns, restart):
    asyncio.run(async_scenario(
        "async single faults", lambda: async_single(chaos_url, chaos_ns,
                                                    socket_timeout=SOCKET_TIMEOUT),
        single_faults(chaos_server, restart), volatile=restart))


def test_async_cluster(cluster, cluster_ns):
    asyncio.run(async_scenario(
        "async cluster faults",
        lambda: async_cluster(cluster.url, cluster_ns, socket_timeout=SOCKET_TIMEOUT),
        cluster_faults(cluster)))
    cluster.wait_ok()
