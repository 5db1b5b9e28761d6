"""The periodic wiper: removes expired sessions every ``interval`` seconds in a daemon thread.

It starts lazily on first use in each process (so a pre-forking server's workers each get their
own, and the parent's thread is never inherited half-alive) and stops on close(). Running it in
many processes at once is safe: each removal is one atomic script.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("redis_sessions")


class Wiper:
    def __init__(self, wipe: Callable[[], int], interval: float) -> None:
        self._wipe = wipe
        self.interval = interval
        self._pid = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-sessions-wiper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                removed = self._wipe()
                if removed:
                    log.debug("redis-sessions: wiped %d expired sessions", removed)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("redis-sessions: wipe failed: %s", exc)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=5)
        self._thread = None
        self._pid = 0
