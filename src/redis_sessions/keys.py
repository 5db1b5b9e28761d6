"""Redis key and member naming, in one place, as Node's redis-sessions v4 lays them out.

| key                      | type | content                                   |
| ``{ns}:{app}:{token}``   | HASH | id r w d ip la ttl [no_resave]            |
| ``{ns}:{app}:_sessions`` | ZSET | ``{token}:{id}`` scored by last activity  |
| ``{ns}:{app}:us:{id}``   | SET  | the tokens of one user id                 |
| ``{ns}:{app}:_users``    | ZSET | ``{id}`` scored by last activity          |
| ``{ns}:SESSIONS``        | ZSET | ``{app}:{token}:{id}`` scored by expiry   |
| ``{ns}:cache``           | pub/sub channel: ``{app}:{token}`` on every change |

Ours only (Node never reads them):

| ``{ns}:{app}:an:{token}`` | STRING | an anonymous session: the JSON of its data; Redis TTL |
| ``{ns}:{app}:rt:{token}`` | STRING | a rotated token's mark: the successor's token or ""; short TTL |

The Lua scripts receive the prefixes built here (``session_prefix``, ``user_prefix``) and only
append a token or an id to them; ``scripts/_lib.lua`` builds the two member formats below the same
way (``token:id`` and ``app:token:id``). ``app`` and ``token`` never contain ``:``; ``id`` may, so
members are split at the first one or two colons only.
"""

from __future__ import annotations

from typing import NamedTuple


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
