"""What Redis's eviction policy may do to the sessions, judged once, from ``INFO memory``.

Under ``maxmemory`` Redis either refuses writes (``noeviction``) or evicts keys: any key
(``allkeys-*``) or only keys with a TTL (``volatile-*``). The indexes never carry a TTL, and a
session missing from its user's token set counts as ended, so every live session of a user id is
found by soid/killsoid under every policy. What a policy can still cost decides its level:

- no ``maxmemory``, or ``noeviction``: nothing is evicted (``OK``);
- ``volatile-*``: users may be logged out before their ttl (``WARNING``: supported);
- ``allkeys-*``: an evicted app-wide index makes killall, soapp, activity and the wiper miss
  sessions (``PROBLEM``).

The managers log what is not ``OK`` at their first call; ``redis-sessions check`` reports each
risk at its level (a problem: exit 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Risk", "eviction_risks", "parse_info", "OK", "WARNING", "PROBLEM"]

#: the levels of a risk (and of every finding of ``redis-sessions check``)
OK, WARNING, PROBLEM = "ok", "warning", "problem"
#: the policy under which Redis never evicts and refuses writes at maxmemory instead
SAFE_POLICY = "noeviction"


class Risk(NamedTuple):
    """One thing the policy may do to the sessions: its level (``OK``, ``WARNING`` or
    ``PROBLEM``) and a sentence saying what and why."""

    level: str
    message: str


def parse_info(info: Mapping[str, object] | bytes | str) -> tuple[str, int]:
    """(maxmemory-policy, maxmemory in bytes) from ``INFO memory``: redis-py's dict or the raw
    text a wire returns."""
    if isinstance(info, (bytes, str)):
        text = info.decode("utf-8", "replace") if isinstance(info, bytes) else info
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in fields.items()}
    policy = str(info.get("maxmemory_policy") or SAFE_POLICY)
    try:
        maxmemory = int(info.get("maxmemory") or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        maxmemory = 0
    return policy, maxmemory


def eviction_risks(info: Mapping[str, object] | bytes | str, redis_ttl: bool = True
                   ) -> list[Risk]:
    """What the server's eviction policy may remove, worst first: one ``OK`` risk when nothing
    can be evicted, else a sentence per risk. ``info`` is ``INFO memory`` (redis-py's dict or
    the raw text); ``redis_ttl`` the manager's option (a Redis TTL on each session's hash)."""
    policy, maxmemory = parse_info(info)
    if not maxmemory:
        return [Risk(OK, "no maxmemory limit: nothing is evicted")]
    if policy == SAFE_POLICY:
        return [Risk(OK, f"noeviction with maxmemory {maxmemory} bytes: nothing is evicted; "
                         "at maxmemory Redis refuses logins, saves and loads, and logouts "
                         "still run")]
    if policy.startswith("allkeys-"):
        return [
            Risk(PROBLEM, f"maxmemory-policy {policy}: an evicted app-wide index makes "
                          "killall, soapp, activity and the wiper miss sessions; use "
                          "noeviction (recommended) or a volatile-* policy"),
            Risk(WARNING, f"maxmemory-policy {policy}: at maxmemory Redis may evict any "
                          "session (the user is logged out early) and any user index; a "
                          "session whose user index was evicted ends at its next use, so "
                          "soid/killsoid stay exact"),
        ]
    risks = []
    if redis_ttl:
        risks.append(Risk(WARNING, f"maxmemory-policy {policy}: at maxmemory Redis may evict "
                                   "session hashes (they carry a Redis TTL with "
                                   "redis_ttl=True), logging users out before their ttl; the "
                                   "indexes carry none, so soid/killsoid stay exact. "
                                   "noeviction keeps every session"))
    risks.append(Risk(WARNING, f"maxmemory-policy {policy}: at maxmemory Redis may evict "
                               "anonymous sessions and rotation marks (they carry a Redis "
                               "TTL): a visitor loses their data, and a request in flight "
                               "during a log-in may expire the new cookie"))
    return risks
