"""os.fork() mid-traffic: a child (a pre-forking server's worker, multiprocessing's fork start
method) uses the manager it inherited. It must get connections of its own (never one of the
parent's, with the parent's replies on it) and must not deadlock on a lock inherited held
(issue 17, item 4: the local cache's, held by the invalidation listener at fork time). Each
child is bounded: a child that does not finish in time is killed and the test fails."""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time

import pytest

from .conftest import blocking_cluster, blocking_single
from .drive import drive, with_background
from .users import APP, IP, Deadline, Population, Tally, report

SECONDS = 2.0
CHILD_SECONDS = 0.3
CHILD_TIMEOUT = 10.0
WORKERS = 3


def in_child(work, timeout: float = CHILD_TIMEOUT) -> dict:
    """Fork; the child runs ``work()`` and sends its JSON result back. The child is killed (and
    the test fails) when it has not finished within ``timeout``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read)
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"the forked child did not finish in {timeout} s (a deadlock?)")
            chunk = os.read(read, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    result = json.loads(data or b'{"error": "the child sent nothing"}')
    assert "error" not in result, result["error"]
    return result


def child_traffic(manager, seed: int) -> dict:
    """What a forked child does: its own users on the inherited manager, then the check."""
    pop = Population(users=4, sessions=2, seed=seed)
    pop.create_all(manager)
    tally = Tally()
    drive(manager, pop, pop.users, Deadline(CHILD_SECONDS), tally, seed=seed)
    pop.verify(manager, tally)
    return tally.as_dict()


def fork_scenario(name: str, make, forks: int = 6) -> None:
    manager = make()
    pop = Population(users=4 * WORKERS, sessions=2)
    pop.create_all(manager)
    groups = pop.split(WORKERS)
    tallies = [Tally() for _ in range(WORKERS)]
    children: list[Tally] = []
    deadline = Deadline(SECONDS)

    def forking() -> None:
        for n in range(forks):
            time.sleep(SECONDS / (forks + 1))
            children.append(Tally.from_dict(in_child(lambda: child_traffic(manager, n))))
        # then the parent's own calls go on: its connections must be intact
        drive(manager, pop, groups[0], deadline, tallies[0], seed=0)

    with_background(forking, [lambda i=i: drive(manager, pop, groups[i], deadline, tallies[i],
                                                seed=i) for i in range(1, WORKERS)])
    parent = report(f"{name}, parent", tallies)
    child = report(f"{name}, {len(children)} forked children", children)
    clean = Tally()
    pop.verify(manager, clean)
    manager.close()
    clean = report(f"{name}, clean pass", [clean])
    for tally in (parent, child, clean):
        assert (tally.wrong, tally.crashed, tally.failed) == (0, 0, 0), tally.samples + tally.failures


@pytest.mark.parametrize("cache_time", [0, 5], ids=["no-cache", "cache"])
def test_blocking_single(chaos_url, chaos_ns, cache_time):
    fork_scenario(f"fork, blocking single, cache_time={cache_time}",
                  lambda: blocking_single(chaos_url, chaos_ns, cache_time=cache_time))


def test_blocking_cluster(cluster, cluster_ns):
    fork_scenario("fork, blocking cluster, cache_time=5",
                  lambda: blocking_cluster(cluster.url, cluster_ns, cache_time=5))


def test_child_never_deadlocks_on_the_cache_lock_held_at_fork(chaos_url, chaos_ns):
    """Item 4, deterministic: a thread of the parent holds the cache's lock at the moment of
    the fork, as the invalidation listener does while it drops a key. The child's first set(),
    kill(), upgrade() and killsoid() must still return."""
    rs = blocking_single(chaos_url, chaos_ns, cache_time=5)
    tokens = [rs.create(APP, f"user{n}", IP, d={"owner": f"user{n}"}) for n in range(3)]
    for _ in range(250):  # the listener runs once the subscription is confirmed
        rs.get(APP, tokens[0])
        if rs.cache._listening:
            break
        time.sleep(0.02)
    assert rs.cache._listening, "the cache listener never subscribed"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # what the listener thread does in drop(): the lock, briefly
        with rs.cache._lock:
            held.set()
            release.wait(2)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)

    def child() -> dict:
        done = []
        done.append(rs.set(APP, tokens[0], {"v": 1})["d"]["v"] == 1 and "set")
        done.append(rs.kill(APP, tokens[1]) == 1 and "kill")
        done.append(rs.upgrade(APP, tokens[2], "user9", IP)["id"] == "user9" and "upgrade")
        done.append(rs.killsoid(APP, "user0") == 1 and "killsoid")
        return {"done": done}

    try:
        result = in_child(child, timeout=5)
    finally:
        release.set()
        holder.join(5)
    assert result["done"] == ["set", "kill", "upgrade", "killsoid"]
    rs.close()
