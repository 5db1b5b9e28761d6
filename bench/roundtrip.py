"""µs per get(): the raw floor, our fast path and plain redis-py, measured in one run.

    python bench/roundtrip.py [--loops 2000] [--repeat 9]

Rows: a raw socket + hiredis.Reader round trip of the get function (the floor: nothing but packing,
the network and Redis), the manager's get() (validation, a connection per call from this process's
idle list, the wire, parsing), the same on a ``BlockingConnectionPool`` (whose connections go back
to redis-py's pool after every call), and the same function through ``redis.Redis.fcall`` plus
parsing; these managers use ``activity_resolution=0``, so every get() runs the function as the
floor does. A last row is the default manager's get() of a hot session (within the activity
resolution: one round trip of plain HMGETs, no function). The rows are
measured in turns (each of ``--repeat`` rounds times every row once, in a rotated order), so a
busy machine slows them alike; "vs floor" is the median of each round's ratio.
"""

from __future__ import annotations

from collections.abc import Callable

import argparse
import secrets
import statistics
import time

import redis

from _common import measure, raw_caller, redis_url
from redis_sessions import RedisSessions, core, scripts
from redis_sessions.operations import parse

APP = "benchapp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    opts = parser.parse_args()

    with redis_url() as url:
        rs = RedisSessions(url, namespace="rsbench" + secrets.token_hex(4), wipe=0,
                           activity_resolution=0)
        token = rs.create(APP, "user1", "10.0.0.1", d={f"key{i}": f"value{i}" for i in range(10)})
        ctx = rs._app(APP)
        call = ctx.call(scripts.GET, ctx.token_keys(token), (token, "0", 0))
        keys, args = call.keys, call.args
        command = scripts.GET.pack(keys, args)

        client = redis.Redis.from_url(url)

        def plain() -> object:
            return parse(client.fcall(scripts.GET.function, len(keys), *keys, *args))

        def fast() -> object:
            return rs.get(APP, token)

        bounded = RedisSessions(redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            url)), namespace=rs.namespace, wipe=0, activity_resolution=0)

        def through_pool() -> object:
            return bounded.get(APP, token)

        hot_manager = RedisSessions(url, namespace=rs.namespace, wipe=0)

        def hot() -> object:
            return hot_manager.get(APP, token)

        # (loads the library; the default manager learns the server's time)
        assert fast() is not None and through_pool() is not None and hot() is not None
        with raw_caller(url, command) as raw:
            assert parse(raw()) is not None and plain() is not None
            rows = {
                "raw socket + hiredis (floor)": raw,
                "RedisSessions.get() (fast path)": fast,
                "RedisSessions.get(), BlockingConnectionPool": through_pool,
                "redis.Redis.fcall + parse (plain redis-py)": plain,
                "RedisSessions.get(), hot session (defaults)": hot,
            }
            runs = interleaved(rows, opts.loops, opts.repeat)
        floor = runs["raw socket + hiredis (floor)"]
        print(f"core: {core.IMPLEMENTATION}; {opts.repeat} rounds of {opts.loops} calls per row, "
              "rows in turns; medians")
        print(f"{'path':44} {'us/op':>8} {'vs floor':>9}")
        for name, values in runs.items():
            ratio = statistics.median(v / f for v, f in zip(values, floor))
            print(f"{name:44} {statistics.median(values):8.1f} {ratio:8.2f}x")
        ours, redispy = runs["RedisSessions.get() (fast path)"], \
            runs["redis.Redis.fcall + parse (plain redis-py)"]
        print("plain redis-py / fast path: "
              f"{statistics.median(p / o for p, o in zip(redispy, ours)):.2f}x")
        rs.killall(APP)
        rs.close()
        bounded.close()
        hot_manager.close()
        client.close()


def interleaved(rows: dict[str, Callable[[], object]], loops: int, repeat: int
                ) -> dict[str, list[float]]:
    """µs per call of each row in each of ``repeat`` rounds, the rows taking turns (the order
    rotated every round) so that the machine's load drifts over all of them alike."""
    names = list(rows)
    for fn in rows.values():
        measure(fn, min(loops, 200), 1)  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            fn = rows[name]
            start = time.perf_counter_ns()
            for _ in range(loops):
                fn()
            runs[name].append((time.perf_counter_ns() - start) / loops / 1000)
    return runs


if __name__ == "__main__":
    main()
