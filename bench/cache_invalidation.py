"""How long another process's local cache keeps serving a session after a kill() returned.

    python bench/cache_invalidation.py [--kills 500]

Two managers (two "processes") on one Redis: the reader has ``cache_time`` on and a session in
its cache; the writer kills it. The delay is from the writer's kill() returning until the
reader's listener dropped the entry (the pub/sub message's trip through Redis and the listener
thread); in the writer's own process it is zero by construction (tests/manager/test_cache.py).
Prints the median, the 99th percentile and the maximum, in ms.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

from _common import redis_url
from redis_sessions import RedisSessions
from redis_sessions.keys import cache_message

APP = "benchapp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=500)
    opts = parser.parse_args()

    with redis_url() as url:
        namespace = "rsbench" + secrets.token_hex(4)
        writer = RedisSessions(url, namespace=namespace, wipe=0)
        reader = RedisSessions(url, namespace=namespace, wipe=0, cache_time=60)
        reader.activity(APP, 600)
        reader.cache.get(APP, "A" * 64)  # starts the listener
        while not reader.cache._listening:
            time.sleep(0.01)
        delays = []
        for _ in range(opts.kills):
            token = writer.create(APP, "user1", "10.0.0.1")
            reader.get(APP, token)
            key = cache_message(APP, token)
            assert key in reader.cache._entries
            writer.kill(APP, token)
            returned = time.perf_counter()
            while key in reader.cache._entries:
                time.sleep(0)  # yield to the listener thread
            delays.append((time.perf_counter() - returned) * 1000)
        delays.sort()
        p99 = delays[int(len(delays) * 0.99) - 1]
        print(f"{opts.kills} kills: stale in the other process for median "
              f"{statistics.median(delays):.3f} ms, p99 {p99:.3f} ms, max {delays[-1]:.3f} ms")
        reader.close()
        writer.close()


if __name__ == "__main__":
    main()
