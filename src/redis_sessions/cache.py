"""The optional in-process cache of get() replies, invalidated across processes by pub/sub.

Every set/kill (from Python or Node) publishes ``{app}:{token}`` on ``{ns}:cache``; a daemon
thread per process listens and drops that entry. While the subscription is not confirmed (at
start, or after it dropped) the cache is flushed and not used: a missed message would otherwise
serve stale data.

A reply read from Redis is cached only if no invalidation of its key (nor a flush) was handled
since just before the read (``ticket()`` then ``put(..., ticket)``): otherwise a reply read just
before another process's kill() could land in the cache after the kill's message was handled,
and the killed session would be served until the entry expires.

This process's own writes (set, kill, killsoid, killall, upgrade, regenerate) drop their entries
(or flush) before their script runs AND again once it returned or failed: a get() that read Redis
while the script had not yet run then offers the old state with a ticket the second drop voids,
so once a write returned no read in this process serves what it replaced, whatever the timing of
its own pub/sub message. Other processes drop it when that message arrives.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from redis.client import PubSub

from . import core
from .connection import forget_in_child
from .keys import cache_message, parse_cache_message

log = logging.getLogger("redis_sessions")


def _copy(session: dict) -> dict:
    """A copy the caller may change freely (the data dict ``d`` included)."""
    copied = dict(session)
    if "d" in copied:
        copied["d"] = core.snapshot(copied["d"])  # deep: values may be nested containers
    return copied


class Subscriber(Protocol):
    """What the listener needs of a client: a new subscription (redis-py's ``pubsub()``: a
    ``redis.Redis``'s, a ``RedisCluster``'s, or the async manager's blocking twin)."""

    def pubsub(self, **kwargs: Any) -> PubSub: ...


class LocalCache:
    """An LRU of session dicts keyed by ``app:token``, each kept for ``ttl`` seconds."""

    def __init__(self, client: Subscriber, channel: str, ttl: float, max_entries: int) -> None:
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
        self._reset_versions()
        forget_in_child(self)

    def _after_fork(self) -> None:
        """In a forked child: nothing of the parent's cache is trusted, and its lock may have
        been held by the parent's listener thread; the listener starts again on first use."""
        self._lock = threading.Lock()
        self._pid = 0
        self._listening = False
        self._entries = OrderedDict()
        self._reset_versions()

    def _reset_versions(self) -> None:
        # every drop and flush bumps _version; _dropped holds each dropped key's last version
        # (at most max_entries of them: beyond that it is cleared, which counts as a flush);
        # a ticket older than _floor (the last flush) or than its key's drop is void
        self._version = 0
        self._floor = 0
        self._dropped: dict[str, int] = {}

    def _ensure_listener(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:  # first use in this process (also after a fork): one listener
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            # made at first use, not at construction: under gevent that is after the
            # monkeypatching, so waiting on it yields to other greenlets
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

    def ticket(self) -> int | None:
        """Taken just before reading Redis, passed to put(); None when nothing may be cached."""
        if not self._listening:
            return None
        with self._lock:
            return self._version

    def put(self, app: str, token: str, session: dict, ticket: int | None) -> None:
        """Cache ``session`` unless its key was dropped (or the cache flushed) since ``ticket``."""
        if ticket is None or not self._listening:
            return
        key = cache_message(app, token)
        with self._lock:
            if ticket < self._floor or self._dropped.get(key, -1) > ticket:
                return
            self._entries[key] = (time.monotonic() + self.ttl, _copy(session))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop(self, app: str, token: str) -> None:
        """Forget one session, and void the tickets taken before (their reads may be stale)."""
        key = cache_message(app, token)
        with self._lock:
            self._entries.pop(key, None)
            self._version += 1
            if len(self._dropped) >= self.max_entries:
                self._dropped.clear()
                self._floor = self._version
            self._dropped[key] = self._version

    def flush(self) -> None:
        """Forget every session, and void every ticket taken before."""
        with self._lock:
            self._entries.clear()
            self._version += 1
            self._floor = self._version
            self._dropped.clear()

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
                else:
                    log.debug("redis-sessions: cache not subscribed yet (%r); trying again", exc)
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
