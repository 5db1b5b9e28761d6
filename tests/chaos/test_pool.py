"""Issue 17, item 6: connections held per thread for the thread's life starve a bounded pool.
With redis-py's BlockingConnectionPool(max_connections=4) shared by 8 long-lived threads, every
thread's calls must go through (a connection is needed only during a call), never fail with
"No connection available".

Each thread pauses a moment between calls, as a request thread does between requests: with
eight threads calling back to back, four connections are saturated and redis-py's pool itself
lets a waiter wait past its timeout now and then (plain ``redis.Redis.get`` loops do too)."""

from __future__ import annotations

import threading
import time

import redis

from redis_sessions import RedisSessions

from .drive import in_threads
from .users import Deadline, Population, Tally, report, run

THREADS = 8
SECONDS = 2.0
THINK = 0.001  # seconds between two calls of a thread


def test_a_bounded_pool_serves_more_long_lived_threads_than_connections(chaos_url, chaos_ns):
    pool = redis.BlockingConnectionPool.from_url(chaos_url, max_connections=4, timeout=1,
                                                 socket_timeout=5)
    rs = RedisSessions(redis.Redis(connection_pool=pool), namespace=chaos_ns, wipe=0)
    pop = Population(users=THREADS, sessions=1)
    pop.create_all(rs)
    tallies = [Tally() for _ in range(THREADS)]
    started = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        user = pop.users[i]
        started.wait(5)  # all eight alive at once, for the whole run (longer than the pool's
        deadline = Deadline(SECONDS)  # timeout: a starved thread fails within it)
        while deadline:
            plan = pop.plan(user)
            run(plan, lambda: plan.invoke(rs), tallies[i], ())
            time.sleep(THINK)

    in_threads([lambda i=i: worker(i) for i in range(THREADS)])
    total = report("BlockingConnectionPool(4) shared by 8 threads", tallies)
    rs.close()
    pool.disconnect()
    starved = [i for i, tally in enumerate(tallies) if tally.failed]
    assert not starved, f"threads {starved} failed: {total.failed} calls ({total.failures})"
    assert (total.wrong, total.crashed) == (0, 0), total.samples
    assert all(tally.calls > 0 for tally in tallies)
