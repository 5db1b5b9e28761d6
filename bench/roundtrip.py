"""µs per get(): the raw floor, our fast path and plain redis-py, measured in one run.

    python bench/roundtrip.py [--loops 2000] [--repeat 9]

Rows: a raw socket + hiredis.Reader round trip of the get function (the floor: nothing but packing,
the network and Redis), the manager's get() (validation, the wire fast path, parsing), and the same
function through ``redis.Redis.fcall`` plus parsing. Medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import secrets

import redis

from _common import measure, raw_caller, redis_url
from redis_sessions import RedisSessions, core, scripts

APP = "benchapp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    opts = parser.parse_args()

    with redis_url() as url:
        rs = RedisSessions(url, namespace="rsbench" + secrets.token_hex(4), wipe=0)
        token = rs.create(APP, "user1", "10.0.0.1", d={f"key{i}": f"value{i}" for i in range(10)})
        ctx = rs._app(APP)
        keys = (*ctx.keys, ctx.session_prefix + token)
        args = (*ctx.args, token)
        command = scripts.GET.pack(keys, args)

        client = redis.Redis.from_url(url)

        def plain() -> object:
            return core.parse_session(client.fcall(scripts.GET.function, len(keys), *keys, *args))

        def fast() -> object:
            return rs.get(APP, token)

        assert fast() is not None  # loads the library
        with raw_caller(url, command) as raw:
            assert core.parse_session(raw()) is not None and plain() is not None
            floor = measure(raw, opts.loops, opts.repeat)
        ours = measure(fast, opts.loops, opts.repeat)
        redispy = measure(plain, opts.loops, opts.repeat)
        print(f"core: {core.IMPLEMENTATION}; {opts.repeat} runs of {opts.loops} calls; medians")
        print(f"{'path':44} {'us/op':>8} {'vs floor':>9}")
        for name, value in (
            ("raw socket + hiredis (floor)", floor),
            ("RedisSessions.get() (fast path)", ours),
            ("redis.Redis.fcall + parse (plain redis-py)", redispy),
        ):
            print(f"{name:44} {value:8.1f} {value / floor:8.2f}x")
        print(f"plain redis-py / fast path: {redispy / ours:.2f}x")
        rs.killall(APP)
        rs.close()
        client.close()


if __name__ == "__main__":
    main()
