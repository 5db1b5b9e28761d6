"""What the benchmark scripts share: the Redis to use, the timing loop, the raw round trip.

The package under test is the installed one (``pip install .``); only the repository root is put
on ``sys.path``, for ``tests.redis_server``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_server import RedisServer  # noqa: E402


@contextlib.contextmanager
def private_redis(url: str | None = None) -> Iterator[str]:
    """``url`` when given (used as it is, never flushed), else a private server started for the
    run and stopped after it. Unlike ``redis_url()`` this ignores REDIS_URL: the scripts that
    read the server's own counters (INFO) want a server nobody else uses."""
    if url:
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


def server_cpu_us(client: Any) -> float:
    """The Redis server's CPU time so far in µs (user + sys): its main thread's (where commands
    and scripts run) when INFO reports it, else the whole process's (Redis < 6.2)."""
    info = client.info("cpu")
    if "used_cpu_user_main_thread" in info:
        return (info["used_cpu_user_main_thread"] + info["used_cpu_sys_main_thread"]) * 1e6
    return (info["used_cpu_user"] + info["used_cpu_sys"]) * 1e6


def command_calls(client: Any) -> dict[str, int]:
    """Calls so far per command name (INFO commandstats, lower case; commands run by scripts
    count too), e.g. ``{"hmget": 12, "evalsha": 3}``."""
    return {name: calls for name, (calls, _) in command_stats(client).items()}


def command_stats(client: Any) -> dict[str, tuple[int, int]]:
    """(calls, µs) so far per command name (INFO commandstats). A script's or EXEC's µs include
    those of the commands it ran, which are also counted under their own names."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()}


def calls_delta(before: dict[str, int], after: dict[str, int],
                ignore: tuple[str, ...] = ("info",)) -> dict[str, int]:
    """The commands called between two ``command_calls()`` snapshots (``ignore``: the probes)."""
    delta = {name: n - before.get(name, 0) for name, n in after.items() if name not in ignore}
    return {name: n for name, n in delta.items() if n}


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL, else a private server started for the run (and stopped after it)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


def measure(fn: Callable[[], object], loops: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean µs per call of ``fn`` (after a short warm-up)."""
    for _ in range(min(loops, 200)):
        fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        runs.append((time.perf_counter_ns() - start) / loops / 1000)
    return statistics.median(runs)


@contextlib.contextmanager
def raw_caller(url: str, packed: bytes) -> Iterator[Callable[[], object]]:
    """A function sending ``packed`` over a raw socket and reading the reply with
    ``hiredis.Reader``: the floor of one round trip (no client library at all)."""
    import hiredis

    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()

    def call() -> object:
        sock.sendall(packed)
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply
            reader.feed(sock.recv(65536))

    try:
        yield call
    finally:
        sock.close()
