"""The optional in-process cache of get() replies, invalidated across processes by pub/sub.

Every set/kill (from Python or Node) publishes ``{app}:{token}`` on ``{ns}:cache``; a daemon
thread per process listens and drops that entry. While the subscription is not confirmed (at
start, or after it dropped) the cache is flushed and not used: a missed message would otherwise
serve stale data.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict

import redis

from .keys import cache_message, parse_cache_message

log = logging.getLogger("redis_sessions")


def _copy(session: dict) -> dict:
    """A copy the caller may change freely (the data dict ``d`` included)."""
    copied = dict(session)
    if "d" in copied:
        copied["d"] = dict(copied["d"])
    return copied


class LocalCache:
    """An LRU of session dicts keyed by ``app:token``, each kept for ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, channel: str, ttl: float, max_entries: int) -> None:
        self.client = client
        self.channel = channel
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self._listening = False  # True only while the subscription is confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure_listener(self) -> None:
        if self._pid != os.getpid():  # first use in this process (also after a fork)
            self._pid = os.getpid()
            self._listening = False
            self._entries = OrderedDict()
            self._lock = threading.Lock()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._listen, name="redis-sessions-cache", daemon=True
            )
            self._thread.start()

    def get(self, app: str, token: str) -> dict | None:
        self._ensure_listener()
        if not self._listening:
            return None
        key = cache_message(app, token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return _copy(entry[1])

    def put(self, app: str, token: str, session: dict) -> None:
        if not self._listening:
            return
        with self._lock:
            self._entries[cache_message(app, token)] = (time.monotonic() + self.ttl, _copy(session))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop(self, app: str, token: str) -> None:
        with self._lock:
            self._entries.pop(cache_message(app, token), None)

    def flush(self) -> None:
        with self._lock:
            self._entries.clear()

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=False)
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.flush()
                        self._listening = True
                        backoff = 0.1
                    elif message["type"] == "message":
                        data = message["data"]
                        parsed = parse_cache_message(
                            data.decode("utf-8", "replace") if isinstance(data, bytes) else data
                        )
                        if parsed:
                            self.drop(*parsed)
            except Exception as exc:  # noqa: BLE001 - any failure means: stop trusting the cache
                if self._listening:
                    log.warning("redis-sessions: cache invalidation lost (%s); cache flushed", exc)
                self._listening = False
                self.flush()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._listening = False
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass

    def close(self) -> None:
        self._stop.set()
        self._listening = False
        self.flush()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=2)
