"""A gevent chaos run, in a process of its own (pytest's process is never monkeypatched):

    python -m tests.chaos.gevent_run '{"url": ..., "cluster": false, "namespace": ...,
                                       "preload": false, "seconds": 2.0}'

Greenlets drive simulated users on one manager; half of them run each call under a
``gevent.Timeout`` of a random fraction of a millisecond or two, the others are killed at random
points (``Greenlet.kill()``) and started again for the same users. With ``preload`` the manager
is built BEFORE ``monkey.patch_all()``, as ``gunicorn --preload`` (and uWSGI's default) loads the
app before its gevent worker patches; otherwise the process patches first, as gunicorn's gevent
worker does without --preload. Prints one JSON line: the tallies of both halves and of the clean
pass that follows.
"""

from __future__ import annotations

import faulthandler
import json
import random
import sys

HANG_AFTER = 12.0  # seconds past the run's own
config = json.loads(sys.argv[1])
# a hang ends the run with every thread's traceback on stderr (the test reports it)
faulthandler.dump_traceback_later(config["seconds"] + HANG_AFTER, exit=True)


def make_manager():
    from tests.chaos.conftest import blocking_cluster, blocking_single

    make = blocking_cluster if config["cluster"] else blocking_single
    return make(config["url"], config["namespace"])


manager = make_manager() if config["preload"] else None

from gevent import monkey  # noqa: E402 - the point of this file: patch after (or before) that

monkey.patch_all()

import gevent  # noqa: E402

from tests.chaos.users import Deadline, Population, Tally, run  # noqa: E402

WORKERS = 20
KILL_EVERY = 0.004  # seconds between two kills, on average


def main() -> None:
    global manager
    if manager is None:
        manager = make_manager()
    pop = Population(users=2 * WORKERS, sessions=2)
    pop.create_all(manager)
    groups = pop.split(WORKERS)
    timed, killed = Tally(), Tally()
    deadline = Deadline(config["seconds"])
    interruptions = (gevent.Timeout, gevent.GreenletExit)

    def worker(i: int, tally: Tally, with_timeouts: bool) -> None:
        rng = random.Random(i * 7919 + tally.calls)
        while deadline:
            plan = pop.plan(rng.choice(groups[i]), rng)
            if not with_timeouts:
                run(plan, lambda: plan.invoke(manager), tally, interruptions)
                continue
            timeout = gevent.Timeout(rng.uniform(0.0002, 0.004))
            timeout.start()
            try:
                run(plan, lambda: plan.invoke(manager), tally, interruptions)
            except gevent.Timeout as exc:
                if exc is not timeout:
                    raise
            finally:
                timeout.close()

    half = WORKERS // 2
    greenlets = {i: gevent.spawn(worker, i, timed, True) for i in range(half)}
    greenlets.update({i: gevent.spawn(worker, i, killed, False) for i in range(half, WORKERS)})
    rng = random.Random(1)
    while deadline:
        gevent.sleep(rng.uniform(0, 2 * KILL_EVERY))
        i = rng.randrange(half, WORKERS)
        greenlets[i].kill(block=True, timeout=2)
        greenlets[i] = gevent.spawn(worker, i, killed, False)
    gevent.joinall(list(greenlets.values()), timeout=15)
    stuck = sum(not g.dead for g in greenlets.values())
    errors = [repr(g.exception) for g in greenlets.values()
              if g.dead and g.exception is not None
              and not isinstance(g.exception, gevent.GreenletExit)]
    clean = Tally()
    fresh = make_manager()
    with gevent.Timeout(30):
        pop.verify(fresh, clean)
    print(json.dumps({"timeouts": timed.as_dict(), "kills": killed.as_dict(),
                      "clean": clean.as_dict(), "stuck": stuck, "errors": errors[:5]}),
          flush=True)


main()
