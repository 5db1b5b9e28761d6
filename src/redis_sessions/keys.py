"""Redis key and member naming, in one place, as Node's redis-sessions v4 lays them out.

| key                      | type | content                                   |
| ``{ns}:{app}:{token}``   | HASH | id r w d ip la ttl [no_resave]            |
| ``{ns}:{app}:_sessions`` | ZSET | ``{token}:{id}`` scored by last activity  |
| ``{ns}:{app}:us:{id}``   | SET  | the tokens of one user id                 |
| ``{ns}:{app}:_users``    | ZSET | ``{id}`` scored by last activity          |
| ``{ns}:SESSIONS``        | ZSET | ``{app}:{token}:{id}`` scored by expiry   |
| ``{ns}:cache``           | pub/sub channel: ``{app}:{token}`` on every change |

Ours only (Node never reads them):

| ``{ns}:{app}:an:{token}`` | HASH   | an anonymous session: ``d`` (JSON) and ``ttl``; Redis TTL |
| ``{ns}:{app}:rt:{token}`` | STRING | a rotated token's mark: the successor's token or ""; short TTL |

The Lua scripts receive the prefixes built here (``session_prefix``, ``user_prefix``) and only
append a token or an id to them; ``scripts/_lib.lua`` builds the two member formats below the same
way (``token:id`` and ``app:token:id``). ``app`` and ``token`` never contain ``:``; ``id`` may, so
members are split at the first one or two colons only.

The cluster layout (``layout="cluster"``, ours; Node cannot read it) puts every key of one user
in one Redis Cluster slot: the keys carry the hash tag ``{app:bucket}``, the bucket being
``crc32(id) % BUCKETS``, and each bucket has its own indexes:

| ``{ns}:{app:b}:{token}``      | HASH | as Node's session hash                           |
| ``{ns}:{app:b}:_sessions``    | ZSET | ``{token}:{id}`` by last activity (bucket b)      |
| ``{ns}:{app:b}:_users``       | ZSET | ``{id}`` by last activity (bucket b)              |
| ``{ns}:{app:b}:_expiry``      | ZSET | ``{app}:{token}:{id}`` by expiry (bucket b)       |
| ``{ns}:{app:b}:us:{id}``      | SET  | the tokens of one user id                         |
| ``{ns}:{app:b}:an:{token}``, ``{ns}:{app:b}:rt:{token}``: as above                 |
| ``{ns}:_apps``                | SET  | the apps that ever created a session (the wiper's list) |

A token names its bucket in its first two characters (two digits of Node's 61-letter token
alphabet), so a token alone finds its slot; the rest keeps Node's format (53 random letters,
``Z``, the time). A user session's token is in its user's bucket; an anonymous one in a random
bucket.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

from ._constants import TOKEN_ALPHABET

# Buckets per app in the cluster layout: 1024 slots of Redis Cluster's 16384 per app, enough to
# spread over a few hundred masters, few enough for a fan-out over all of them to stay cheap.
BUCKETS = 1024
_BASE = len(TOKEN_ALPHABET)
_DIGIT = {c: i for i, c in enumerate(TOKEN_ALPHABET)}


class ExpiryMember(NamedTuple):
    app: str
    token: str
    id: str


class Keys:
    """The key names of one namespace."""

    __slots__ = ("namespace", "expiry", "cache_channel")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.expiry = f"{namespace}:SESSIONS"
        self.cache_channel = f"{namespace}:cache"

    def session_prefix(self, app: str) -> str:
        return f"{self.namespace}:{app}:"

    def session(self, app: str, token: str) -> str:
        return self.session_prefix(app) + token

    def sessions(self, app: str) -> str:
        return f"{self.namespace}:{app}:_sessions"

    def users(self, app: str) -> str:
        return f"{self.namespace}:{app}:_users"

    def user_prefix(self, app: str) -> str:
        return f"{self.namespace}:{app}:us:"

    def user(self, app: str, id: str) -> str:
        return self.user_prefix(app) + id

    def anonymous_prefix(self, app: str) -> str:
        return f"{self.namespace}:{app}:an:"

    def rotated_prefix(self, app: str) -> str:
        return f"{self.namespace}:{app}:rt:"


def session_member(token: str, id: str) -> str:
    return f"{token}:{id}"


def cache_message(app: str, token: str) -> str:
    return f"{app}:{token}"


def parse_expiry_member(member: str) -> ExpiryMember | None:
    """Split ``app:token:id`` at the first two colons (ids may contain more); None if malformed."""
    parts = member.split(":", 2)
    if len(parts) != 3:
        return None
    return ExpiryMember(*parts)


def parse_cache_message(message: str) -> tuple[str, str] | None:
    app, sep, token = message.partition(":")
    return (app, token) if sep else None


# -- the cluster layout ----------------------------------------------------------------------------


def user_bucket(id: str) -> int:
    """The bucket of a user id (cluster layout): every key of the user lives in its slot."""
    return zlib.crc32(id.encode("utf-8", "surrogatepass")) % BUCKETS


def token_bucket(token: str) -> int | None:
    """The bucket a cluster-layout token names, or None for a token that names none."""
    high, low = _DIGIT.get(token[0]), _DIGIT.get(token[1])
    if high is None or low is None:
        return None
    bucket = high * _BASE + low
    return bucket if bucket < BUCKETS else None


def with_bucket(token: str, bucket: int) -> str:
    """``token`` (Node's format) with its first two letters naming ``bucket``."""
    return TOKEN_ALPHABET[bucket // _BASE] + TOKEN_ALPHABET[bucket % _BASE] + token[2:]


class ClusterKeys:
    """The key names of one namespace in the cluster layout (see the module docstring)."""

    __slots__ = ("namespace", "apps", "cache_channel")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.apps = f"{namespace}:_apps"
        self.cache_channel = f"{namespace}:cache"

    def session_prefix(self, app: str, bucket: int) -> str:
        return f"{self.namespace}:{{{app}:{bucket}}}:"

    def sessions(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "_sessions"

    def users(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "_users"

    def expiry(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "_expiry"

    def user_prefix(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "us:"

    def anonymous_prefix(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "an:"

    def rotated_prefix(self, app: str, bucket: int) -> str:
        return self.session_prefix(app, bucket) + "rt:"
