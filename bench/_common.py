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
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_server import RedisServer  # noqa: E402


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
