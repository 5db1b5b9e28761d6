"""asyncio: calls cut short by task.cancel() and asyncio.wait_for timeouts, on the async wires
(one pipelined connection per loop and node, shared by every coroutine): a cancelled caller's
reply must be read and dropped, never handed to the next caller."""

from __future__ import annotations

import asyncio

from .conftest import async_cluster, async_single
from .drive import adrive, with_cancels
from .users import Deadline, Population, Tally, report

SECONDS = 2.0
WORKERS = 16  # half under wait_for, half cancelled at random


async def cancel_scenario(make, name: str) -> None:
    manager = make()
    pop = Population(users=2 * WORKERS, sessions=2)
    await pop.acreate_all(manager)
    groups = pop.split(WORKERS)
    timed, cancelled = Tally(), Tally()
    half = WORKERS // 2
    deadline = Deadline(SECONDS)
    timed_tasks = [asyncio.ensure_future(adrive(manager, pop, groups[i], deadline, timed, seed=i,
                                                wait_for=0.004)) for i in range(half)]
    cancels = await with_cancels(
        lambda i: adrive(manager, pop, groups[half + i], deadline, cancelled, seed=100 + i),
        WORKERS - half, deadline, seed=1)
    await asyncio.wait_for(asyncio.gather(*timed_tasks), 20)
    await manager.close()
    fresh = make()
    clean = Tally()
    await asyncio.wait_for(pop.averify(fresh, clean), 30)
    await fresh.close()
    timed = report(f"{name}, asyncio.wait_for timeouts", [timed])
    cancelled = report(f"{name}, task.cancel() ({cancels} cancels)", [cancelled])
    clean = report(f"{name}, clean pass", [clean])
    assert timed.interrupted > 0 and cancelled.interrupted > 0, "nothing was interrupted"
    for tally in (timed, cancelled):
        assert (tally.wrong, tally.crashed) == (0, 0), tally.samples
        assert tally.failed == 0, tally.failures  # no interruption broke a later call
    assert (clean.wrong, clean.crashed, clean.failed) == (0, 0, 0), clean.samples + clean.failures


def test_async_single(chaos_url, chaos_ns):
    asyncio.run(cancel_scenario(lambda: async_single(chaos_url, chaos_ns), "async single"))


def test_async_cluster(cluster, cluster_ns):
    asyncio.run(cancel_scenario(lambda: async_cluster(cluster.url, cluster_ns), "async cluster"))
