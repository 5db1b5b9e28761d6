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
    count too), e.g. ``{"hmget": 12, "fcall": 3}``."""
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


class RawConnection:
    """One socket to Redis read with ``hiredis.Reader``, no client library: the floor of one
    round trip. Connected on first use, so each forked worker makes its own."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.sock: socket.socket | None = None
        self.reader: Any = None

    def call(self, packed: bytes) -> object:
        """Send one packed command and return its reply."""
        import hiredis

        if self.sock is None:
            self.sock = socket.create_connection(self.address)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reader = hiredis.Reader()
        self.sock.sendall(packed)
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            self.reader.feed(self.sock.recv(65536))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@contextlib.contextmanager
def raw_caller(url: str, packed: bytes) -> Iterator[Callable[[], object]]:
    """A function sending ``packed`` over a ``RawConnection`` (the floor of one round trip)."""
    connection = RawConnection(url)
    try:
        yield lambda: connection.call(packed)
    finally:
        connection.close()


class HttpServer:
    """One HTTP server process serving one bench stack on a free loopback port: started with
    ``command`` (``{port}`` filled in), its output in ``logdir``; ``/read`` must answer 200."""

    def __init__(self, name: str, stack: str, command: list[str], logdir: str,
                 env: dict[str, str] | None = None) -> None:
        import subprocess

        from redis_sessions.embedded import free_port

        self.name = name
        self.stack = stack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(logdir, f"{name}-{stack}.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [part.format(port=self.port) for part in command],
                env={**os.environ, **(env or {})},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} ({self.stack}) exited:\n{self.log()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + "/read", timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} ({self.stack}) not answering in {timeout}s:\n{self.log()}")

    def login(self) -> str:
        """The ``name=value`` of the session cookie ``/login`` sets ("" when none)."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/login", timeout=10) as response:
            header = response.headers.get("Set-Cookie")
        return header.split(";", 1)[0].strip() if header else ""

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def stop(self) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def serving(start: Callable[[str, str], HttpServer], stacks: tuple[str, ...]
            ) -> Iterator[dict[str, HttpServer]]:
    """Every stack served at once (idle servers cost nothing), all stopped at the end;
    ``start(stack, logdir)`` starts one."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-") as logdir:
        started: dict[str, HttpServer] = {}
        try:
            for stack in stacks:
                started[stack] = start(stack, logdir)
            for server in started.values():
                server.wait_ready()
            yield started
        finally:
            for server in started.values():
                server.stop()
