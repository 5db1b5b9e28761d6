"""What Redis's eviction policy may do to the sessions: the warnings, from ``INFO memory``.

Under ``maxmemory`` Redis either refuses writes (``noeviction``) or evicts keys: any key
(``allkeys-*``) or only keys with a TTL (``volatile-*``). The indexes never carry a TTL, and a
session missing from its user's token set counts as ended, so every live session of a user id is
found by soid/killsoid under every policy; what a policy can still cost is said here. The
managers log these warnings at their first call; the CLI's server check shows them too.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["eviction_warnings", "parse_info"]

#: the policies under which Redis never evicts and refuses writes at maxmemory instead
SAFE_POLICY = "noeviction"


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


def eviction_warnings(info: Mapping[str, object] | bytes | str, redis_ttl: bool) -> list[str]:
    """What the server's eviction policy may remove, one sentence each ([] when nothing: no
    ``maxmemory``, or ``noeviction``). ``redis_ttl`` is the manager's option (a Redis TTL on
    each session's hash)."""
    policy, maxmemory = parse_info(info)
    if not maxmemory or policy == SAFE_POLICY:
        return []
    if policy.startswith("allkeys-"):
        return [
            f"Redis maxmemory-policy is {policy}: at maxmemory Redis may evict any session "
            "(the user is logged out early) and any index; a session whose user index was "
            "evicted ends at its next use, so soid/killsoid stay exact",
            f"Redis maxmemory-policy is {policy}: an evicted app-wide index makes killall, "
            "soapp, activity and the wiper miss sessions; use noeviction (recommended) or a "
            "volatile-* policy",
        ]
    warnings = []
    if redis_ttl:
        warnings.append(
            f"Redis maxmemory-policy is {policy}: at maxmemory Redis may evict session hashes "
            "(they carry a Redis TTL with redis_ttl=True), logging users out before their ttl; "
            "the indexes carry none, so soid/killsoid stay exact. noeviction keeps them (then "
            "writes fail at maxmemory, logouts still run)")
    warnings.append(
        f"Redis maxmemory-policy is {policy}: at maxmemory Redis may evict anonymous sessions "
        "and rotation marks (they carry a Redis TTL): visitors lose their data, a request in "
        "flight during a log-in may expire the new cookie")
    return warnings
