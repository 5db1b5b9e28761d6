"""Scale figures (issue 11): memory per session, wipe, soapp/activity, 3 masters vs 1, failover.

    python bench/scale.py [-n 200000] [--wipe-n N] [--seconds 5] [--procs 4] [--skip-failover]
                          [--json FILE]

Everything runs on private servers started here (redis-server and redis-cli from PATH), in
this order:
1. memory: N sessions of N/10 users created by the real create script (pipelined, 1000 per
   round trip), Node's layout then the cluster layout, each on a fresh server: used_memory per
   session.
2. admin calls at N (Node's layout, one server, every session active): soapp (the whole list,
   page by page), activity; then wipe of ``--wipe-n`` expired sessions (created with ttl=10,
   aged by waiting); for each: the time and the longest command SLOWLOG saw (threshold 500 us).
3. get+set throughput, cluster layout: the same run (``--procs`` processes, each one get and
   one set per loop on its own sessions, ``--seconds`` long) against a 1-master cluster and a
   3-master cluster (no replicas in either); the ratio. On a machine with fewer cores than
   servers plus client processes this measures the cluster wire's cost, not the scaling.
4. failovers under a load of creates (tests/cluster/runs.py): a Sentinel manual failover
   without and with durability="replicated", and a cluster master killed (SIGKILL) with it:
   acknowledged creates, how many were lost, how many were refused or timed out.
On a machine shared with other work the timings move from run to run; the memory and the
counts do not.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402

from redis_sessions import RedisSessions, scripts  # noqa: E402
from tests.cluster.conftest import Cluster, Node, SentinelGroup, _wait  # noqa: E402
from tests.cluster.runs import sentinel_failover, sentinel_manager, under_load  # noqa: E402

APP = "benchapp"


def create_many(manager: RedisSessions, n: int, users: int, ttl: int = 7200,
                batch: int = 1000) -> None:
    """n sessions through the create script itself, ``batch`` per round trip."""
    from redis_sessions import core, validate

    ctx = manager._app(APP)
    for first in range(0, n, batch):
        calls = []
        for i in range(first, min(n, first + batch)):
            user = validate.user_id(f"user{i % users}")
            slot = ctx.of_user(user)
            token = slot.new_token()
            call = slot.call(scripts.CREATE, (slot.session_prefix + token, slot.user_prefix + user),
                             (token, user, "10.0.0.1", ttl, "0", 0, *manager.limits,
                              *core.encode_changes({"n": i})))
            calls.append((call.keys, call.args))
        manager._wire.run_many(scripts.CREATE, calls)


def fresh_server(root: Path, *extra: str) -> Node:
    from tests.cluster.conftest import _free_ports

    server = shutil.which("redis-server")
    assert server
    port = _free_ports(1, bus=bool(extra))[0]
    return Node(server, port, root / f"n{port}", *extra).start()


def slowest(client: redis.Redis) -> tuple[int, int]:
    """(longest command in us, commands of 5 ms or more) since the last reset."""
    entries = client.slowlog_get(100_000)
    return (max((e["duration"] for e in entries), default=0),
            sum(1 for e in entries if e["duration"] >= 5000))


def watch(client: redis.Redis) -> None:
    client.config_set("slowlog-log-slower-than", 500)
    client.config_set("slowlog-max-len", 100_000)
    client.slowlog_reset()


def memory(root: Path, n: int) -> dict[str, float]:
    out = {}
    for layout in ("node", "cluster"):
        node = fresh_server(root)
        client = node.client()
        before = client.info("memory")["used_memory"]
        manager = RedisSessions(node.client(), layout=layout, wipe=0)
        started = time.monotonic()
        create_many(manager, n, max(1, n // 10))
        elapsed = time.monotonic() - started
        after = client.info("memory")["used_memory"]
        out[layout] = (after - before) / n
        print(f"memory, {layout} layout: {out[layout]:.0f} B/session ({n} sessions of {n // 10} "
              f"users, created in {elapsed:.1f}s)", flush=True)
        manager.close()
        client.close()
        node.stop()
    return out


def admin(root: Path, n: int, wipe_n: int) -> dict[str, Any]:
    node = fresh_server(root)
    client = node.client()
    manager = RedisSessions(f"redis://127.0.0.1:{node.port}/0", wipe=0)
    create_many(manager, n, max(1, n // 10))
    out: dict[str, Any] = {}
    for name, call in (("soapp", lambda: len(manager.soapp(APP, 600))),
                       ("activity", lambda: manager.activity(APP, 600))):
        watch(client)
        started = time.monotonic()
        result = call()
        elapsed = time.monotonic() - started
        longest, over = slowest(client)
        out[name] = {"seconds": elapsed, "result": result, "longest_us": longest, "over_5ms": over}
        print(f"{name} at {n} sessions: {elapsed:.2f}s -> {result}; longest command "
              f"{longest} us, {over} commands >= 5 ms", flush=True)
    manager.killall(APP)
    manager.close()
    # without Redis TTLs (a deployment shared with Node): the wiper does all the removing
    manager = RedisSessions(f"redis://127.0.0.1:{node.port}/0", wipe=0, redis_ttl=False)
    create_many(manager, wipe_n, max(1, wipe_n // 10), ttl=10)
    time.sleep(12)  # every one of them expired
    watch(client)
    started = time.monotonic()
    removed = manager.wipe()
    elapsed = time.monotonic() - started
    longest, over = slowest(client)
    out["wipe"] = {"seconds": elapsed, "result": removed, "longest_us": longest, "over_5ms": over}
    print(f"wipe of {wipe_n} expired sessions: {elapsed:.2f}s -> {removed}; longest command "
          f"{longest} us, {over} commands >= 5 ms", flush=True)
    manager.close()
    client.close()
    node.stop()
    return out


def _worker(url: str, seconds: float, sessions: int, seed: int, queue: Any) -> None:
    manager = RedisSessions(RedisCluster.from_url(url), layout="cluster", wipe=0)
    tokens = [manager.create(APP, f"w{seed}-{i}", "10.0.0.1") for i in range(sessions)]
    done, i = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        token = tokens[i % sessions]
        manager.get(APP, token)
        manager.set(APP, token, {"n": i})
        done += 2
        i += 1
    queue.put(done / seconds)
    manager.close()


def throughput(url: str, procs: int, seconds: float) -> float:
    queue: Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_worker, args=(url, seconds, 200, i, queue))
               for i in range(procs)]
    for w in workers:
        w.start()
    rates = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return sum(rates)


def one_master_cluster(root: Path) -> Node:
    node = fresh_server(root, "--cluster-enabled", "yes", "--cluster-config-file",
                        str(root / "one.conf"))
    node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    _wait(lambda: node.client().cluster("info")["cluster_state"] == "ok", "1-master cluster")
    return node


def masters(root: Path, procs: int, seconds: float) -> dict[str, float]:
    one = one_master_cluster(root)
    one_rate = throughput(f"redis://127.0.0.1:{one.port}/0", procs, seconds)
    one.stop()
    three = Cluster(root / "three", replicas=0).start()  # masters alone, as the 1-master one
    three_rate = throughput(three.url, procs, seconds)
    three.stop()
    print(f"get+set, cluster layout, {procs} processes x {seconds:.0f}s: 1 master "
          f"{one_rate:.0f} ops/s, 3 masters {three_rate:.0f} ops/s, ratio "
          f"{three_rate / one_rate:.2f}", flush=True)
    return {"one": one_rate, "three": three_rate, "ratio": three_rate / one_rate}


def failovers(root: Path) -> dict[str, str]:
    out = {}
    group = SentinelGroup(root / "sentinel").start()
    for durability in (None, "replicated"):
        manager = sentinel_manager(group, f"fo{durability}", durability)
        run = under_load(manager, lambda: sentinel_failover(group))
        manager.close()
        out[f"sentinel durability={durability}"] = run.row()
        print(f"Sentinel manual failover, durability={durability}: {run.row()}", flush=True)
    group.stop()
    cluster = Cluster(root / "killed").start()
    manager = RedisSessions(cluster.client(), layout="cluster", wipe=0,
                            durability="replicated", timeout_ms=500)
    victim = cluster.masters()[0]

    def kill() -> None:
        victim.kill()
        cluster.wait_failover()
        victim.start()

    run = under_load(manager, kill)
    manager.close()
    cluster.stop()
    out["cluster master killed, durability=replicated"] = run.row()
    print(f"cluster master SIGKILLed, durability=replicated: {run.row()}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200_000, help="sessions (default 200000)")
    parser.add_argument("--wipe-n", type=int, default=100_000,
                        help="expired sessions to wipe (default 100000)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("bench/scale.py needs redis-server and redis-cli on PATH", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["memory"] = memory(root, args.n)
        results["admin"] = admin(root, args.n, args.wipe_n)
        results["masters"] = masters(root, args.procs, args.seconds)
        if not args.skip_failover:
            results["failover"] = failovers(root)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
