"""Exceptions raised from a signal handler in the middle of blocking calls (SIGALRM with
ITIMER_REAL, as request-timeout decorators and Celery's soft time limits do), and
KeyboardInterrupt: the call that was cut short may fail, but no later call may read its reply."""

from __future__ import annotations

import pytest

from .conftest import blocking_cluster, blocking_single
from .drive import Alarm, drive, with_background
from .users import Deadline, Interrupt, Population, Tally, report

SECONDS = 2.0
WORKERS = 4  # the main thread (interrupted) and three threads beside it


def signal_scenario(make, name: str, exception: type[BaseException]) -> None:
    manager = make()
    pop = Population(users=4 * WORKERS, sessions=2)
    pop.create_all(manager)
    groups = pop.split(WORKERS)
    tallies = [Tally() for _ in range(WORKERS)]
    deadline = Deadline(SECONDS)
    with Alarm(exception, 0.00005, 0.002) as alarm:
        with_background(
            lambda: drive(manager, pop, groups[0], deadline, tallies[0], seed=0,
                          interrupt=alarm.armed, interruptions=(exception,)),
            [lambda i=i: drive(manager, pop, groups[i], deadline, tallies[i], seed=i)
             for i in range(1, WORKERS)])
    manager.close()
    total = report(f"{name}, {exception.__name__} from SIGALRM", tallies)
    fresh = make()
    clean = Tally()
    pop.verify(fresh, clean)
    fresh.close()
    clean = report(f"{name}, clean pass", [clean])
    assert total.interrupted > 0, "the alarm never cut a call short"
    assert (total.wrong, total.crashed) == (0, 0), total.samples
    assert total.failed == 0, total.failures  # no interruption left a connection unusable
    assert (clean.wrong, clean.crashed, clean.failed) == (0, 0, 0), clean.samples + clean.failures


@pytest.mark.parametrize("exception", [Interrupt, KeyboardInterrupt])
def test_blocking_single(chaos_url, chaos_ns, exception):
    signal_scenario(lambda: blocking_single(chaos_url, chaos_ns), "blocking single", exception)


@pytest.mark.parametrize("exception", [Interrupt, KeyboardInterrupt])
def test_blocking_cluster(cluster, cluster_ns, exception):
    signal_scenario(lambda: blocking_cluster(cluster.url, cluster_ns), "blocking cluster", exception)
