"""The sessions of a test run, apart from the developer's (as a test database is).

A framework's test mode (Django's test runner or pytest-django, Flask's ``TESTING``) swaps the
configured manager for its twin in a test namespace: emptied when this process first uses it
(what a crashed run left) and again at exit, never touching another namespace. The front doors
decide when and which name; this module does the work once for them.
"""

from __future__ import annotations

import atexit
import logging
import os
import re

from .manager import RedisSessions

__all__ = ["isolated", "purge", "worker_suffix"]

_purged: set[tuple[int, str]] = set()  # (id of the client, namespace) emptied in this process
log = logging.getLogger("redis_sessions")


def worker_suffix() -> str:
    """pytest-xdist's worker name ("gw0", ...), which pytest-django appends to the test
    database's name too; "" outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def purge(manager: RedisSessions) -> int:
    """Delete every key of the manager's namespace, in bounded steps; returns how many. Never a
    FLUSHDB: other namespaces on the same Redis are untouched."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", manager.namespace) + ":*"
    client, removed, batch = manager.client, 0, []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += client.delete(*batch)
            batch = []
    if batch:
        removed += client.delete(*batch)
    return removed


def isolated(manager: RedisSessions, namespace: str) -> RedisSessions:
    """``manager``'s twin in a test run's ``namespace`` (same client and options), emptied the
    first time this process uses it and again at exit."""
    twin = manager.in_namespace(namespace)
    mark = (id(manager.client), namespace)
    if mark not in _purged:
        _purged.add(mark)
        purge(twin)
        atexit.register(_purge_at_exit, twin)
    return twin


def _purge_at_exit(manager: RedisSessions) -> None:
    try:
        purge(manager)
    except Exception as exc:  # noqa: BLE001 - Redis may be gone by then; the next run empties it
        log.debug("redis-sessions: the test sessions of %s were not removed at exit: %s",
                  manager.namespace, exc)
