"""µs per get(): the raw floor, our fast path and plain redis-py, measured in one run.

    python bench/roundtrip.py [--loops 2000] [--repeat 9]

Rows: a raw socket + hiredis.Reader round trip of the get script (the floor: nothing but packing,
the network and Redis), the manager's get() (validation, the wire fast path, parsing), and the same
script through ``redis.Redis.evalsha`` plus parsing. Medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import time
from urllib.parse import urlparse

import hiredis
import redis

from _server import redis_url
from redis_sessions import RedisSessions, core, scripts

APP = "benchapp"


def measure(fn, loops: int, repeat: int) -> float:
    """Median µs per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        runs.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(runs)


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
        command = core.pack_command([b"EVALSHA", scripts.GET.sha, len(keys), *keys, *args])

        parsed = urlparse(url)
        sock = socket.create_connection((parsed.hostname, parsed.port or 6379))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = hiredis.Reader()

        def raw() -> object:
            sock.sendall(command)
            while True:
                reply = reader.gets()
                if reply is not False:
                    return reply
                reader.feed(sock.recv(65536))

        client = redis.Redis.from_url(url)

        def plain() -> object:
            return core.parse_session(client.evalsha(scripts.GET.sha, len(keys), *keys, *args))

        def fast() -> object:
            return rs.get(APP, token)

        assert fast() is not None  # loads the script
        assert core.parse_session(raw()) is not None and plain() is not None
        for fn in (raw, fast, plain):  # warm up
            measure(fn, 200, 1)
        floor = measure(raw, opts.loops, opts.repeat)
        ours = measure(fast, opts.loops, opts.repeat)
        redispy = measure(plain, opts.loops, opts.repeat)
        print(f"core: {core.IMPLEMENTATION}; {opts.repeat} runs of {opts.loops} calls; medians")
        print(f"{'path':44} {'us/op':>8} {'vs floor':>9}")
        for name, value in (
            ("raw socket + hiredis (floor)", floor),
            ("RedisSessions.get() (fast path)", ours),
            ("redis.Redis.evalsha + parse (plain redis-py)", redispy),
        ):
            print(f"{name:44} {value:8.1f} {value / floor:8.2f}x")
        print(f"plain redis-py / fast path: {redispy / ours:.2f}x")
        rs.killall(APP)
        rs.close()
        sock.close()
        client.close()


if __name__ == "__main__":
    main()
