"""redis-sessions: many sessions per user id in Redis, wire-compatible with Node's redis-sessions.

``RedisSessions`` is the session manager (create/get/set/kill/soid/soapp/activity/...);
``SessionMiddleware`` puts a ``Session`` into every WSGI request, like connect-redis-sessions.
"""

from importlib.metadata import PackageNotFoundError, version

from .core import IMPLEMENTATION
from .errors import (
    BackendError,
    BackendUnavailable,
    BackendUnsupported,
    ReplicationTimeout,
    SessionError,
    SessionRotated,
    SessionTooLarge,
    ValidationError,
)
from .manager import RedisSessions
from .session import Session
from .wsgi import SessionMiddleware, get_session

try:
    __version__ = version("redis-sessions")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "IMPLEMENTATION",
    "RedisSessions",
    "SessionMiddleware",
    "Session",
    "get_session",
    "SessionError",
    "ValidationError",
    "SessionTooLarge",
    "BackendError",
    "BackendUnavailable",
    "BackendUnsupported",
    "ReplicationTimeout",
    "SessionRotated",
    "__version__",
]
