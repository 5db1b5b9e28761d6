"""``redis-sessions check``: what a Redis offers this library, and what in its setup can hurt it.

Each check gives a ``Finding`` (``ok``, ``warning`` or ``problem``). Problems stop the library
from working or lose sessions (a server without Functions, an ACL that forbids what the
functions run, an ``allkeys-*`` eviction policy, the wrong layout, too few replicas for
``durability="replicated"``); warnings are choices with a cost (no persistence, a
``volatile-*`` policy, a clock apart). The eviction policy is judged by ``eviction.py``, as the
managers judge it at their first call. The library check loads the function library where it
is missing (what the first call of an app does anyway) and creates and kills one probe session
in the namespace, so the ACL is tested by the very functions an app runs, not guessed from its
rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from . import scripts
from .errors import BackendUnsupported, SessionError
from .eviction import OK, PROBLEM, WARNING, eviction_risks

__all__ = ["Finding", "run_checks", "MAX_CLOCK_SKEW", "PROBE_APP"]

#: the seconds a server's clock (each master's) may differ from this machine's
MAX_CLOCK_SKEW = 2.0
#: the app name of the probe session the ACL check creates and kills
PROBE_APP = "rs-check"
_MINIMUM = {"Redis": (7, 0), "Valkey": (7, 2)}
# problems after which the probe session is not tried
_BLOCKING = ("version", "layout", "role")


@dataclass
class Finding:
    """One line of the report: which check, its status, what it found, and on which node."""

    check: str
    status: str
    message: str
    node: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v != ""}


def _version(info: dict[str, Any]) -> tuple[str, str, tuple[int, ...]]:
    """("Redis" or "Valkey", the version text, the version as numbers)."""
    if info.get("server_name") == "valkey" or "valkey_version" in info:
        kind, text = "Valkey", str(info.get("valkey_version", info.get("redis_version", "0")))
    else:
        kind, text = "Redis", str(info.get("redis_version", "0"))
    numbers = tuple(int(part) for part in text.split(".")[:2] if part.isdigit())
    return kind, text, numbers


def _server_checks(name: str, client: redis.Redis, layout: str, replicas: int | None
                   ) -> list[Finding]:
    """The checks of one server (each master of a cluster): version, eviction, persistence,
    cluster mode against the layout, replicas, clock."""
    found: list[Finding] = []

    def add(check: str, status: str, message: str) -> None:
        found.append(Finding(check, status, message, name))

    try:
        info = client.info()
    except redis.ResponseError as exc:  # INFO is @dangerous: an app's own ACL user lacks it
        add("server", WARNING, f"INFO is not permitted ({exc}): version, eviction, persistence, "
                               "layout and replicas not checked (run check with an admin's URL "
                               "too)")
        _clock(client, add)
        return found
    kind, text, numbers = _version(info)
    minimum = _MINIMUM[kind]
    need = "Redis >= 7.0 or Valkey >= 7.2"
    if numbers >= minimum:
        add("version", OK, f"{kind} {text} (needs {need})")
    else:
        add("version", PROBLEM, f"{kind} {text} has no Redis Functions: redis-sessions needs "
                                f"{need}")

    # the managers' own assessment (eviction.py), for their default redis_ttl=True
    for risk in eviction_risks(info):
        add("eviction", risk.level, risk.message)

    aof = bool(int(info.get("aof_enabled", 0)))
    try:
        save = str(client.config_get("save").get("save", ""))
    except redis.ResponseError:  # CONFIG renamed or not permitted (managed services)
        save = None
    if aof:
        add("persistence", OK, "appendonly yes: sessions and logouts survive a restart")
    elif save:
        add("persistence", WARNING, f"RDB snapshots only (save {save}): a restart brings back "
                                    "the sessions logged out since the last snapshot; "
                                    "appendonly yes keeps every logout")
    elif save is None:
        add("persistence", WARNING, "appendonly no, snapshot schedule unknown (CONFIG GET "
                                    "save is not permitted): a restart may lose sessions or "
                                    "bring back logged-out ones")
    else:
        add("persistence", WARNING, "no persistence: a restart loses every session (every "
                                    "user logs in again)")

    cluster = bool(int(info.get("cluster_enabled", 0)))
    if cluster and layout != "cluster":
        add("layout", PROBLEM, "this Redis is a cluster node: Node's layout spans many slots; "
                               "use --layout cluster (layout=\"cluster\")")
    elif not cluster and layout == "cluster":
        add("layout", PROBLEM, "--layout cluster, but this Redis is not a cluster node "
                               "(cluster_enabled:0): use the default layout")
    else:
        add("layout", OK, f"{'a cluster node' if cluster else 'not a cluster node'}, "
                          f"layout {layout}")

    role = str(info.get("role", "master"))
    connected = int(info.get("connected_slaves", 0))
    if role != "master":
        add("role", PROBLEM, "this server is a replica: it refuses writes (READONLY); point "
                             "--redis-url at the master")
    elif replicas is not None and connected < replicas:
        add("replicas", PROBLEM, f"{connected} replica(s) connected, fewer than --replicas "
                                 f"{replicas}: every durable write (durability=\"replicated\") "
                                 "would time out")
    elif connected == 0:
        add("replicas", OK, "no replica (durability=\"replicated\" needs one; a failover "
                            "needs one)")
    else:
        add("replicas", OK, f"{connected} replica(s) connected")

    _clock(client, add)
    return found


def _clock(client: redis.Redis, add: Callable[[str, str, str], None]) -> None:
    """The server's clock (TIME) against this machine's."""
    before = time.time()
    try:
        seconds, micros = client.time()
    except redis.ResponseError as exc:  # the functions read the clock with TIME too
        unsupported = scripts.unsupported(_reply(exc))
        add("clock", PROBLEM, str(unsupported) if unsupported else f"TIME failed: {exc}")
        return
    skew = seconds + micros / 1e6 - (before + time.time()) / 2
    if abs(skew) > MAX_CLOCK_SKEW:
        add("clock", WARNING, f"the server's clock is {abs(skew):.1f} s "
                              f"{'ahead of' if skew > 0 else 'behind'} this machine's: session "
                              "times come from the server's clock, so a failover to a server "
                              "whose clock differs moves every expiry")
    else:
        add("clock", OK, f"the server's clock is within {MAX_CLOCK_SKEW:g} s of this machine's "
                         f"({skew:+.3f} s)")


def _library(name: str, client: redis.Redis) -> Finding | None:
    """The function library on one server: loaded, or loaded now; None when this user may
    neither list nor load it (the probe then tells whether it is there)."""
    listable = True
    try:
        listed = client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", scripts.LIBRARY_NAME)
    except redis.ResponseError as exc:
        unsupported = scripts.unsupported(_reply(exc))
        if unsupported is not None and _reply(exc).upper().startswith("ERR UNKNOWN COMMAND"):
            return Finding("functions", PROBLEM, str(unsupported), name)
        listed, listable = None, False  # FUNCTION LIST not permitted: loading may tell
    if listed is not None and scripts.LIBRARY_NAME.encode() in _flatten(listed):
        return Finding("functions", OK, f"the library {scripts.LIBRARY_NAME} is loaded", name)
    try:
        client.execute_command("FUNCTION", "LOAD", scripts.LIBRARY)
    except redis.ResponseError as exc:
        if "already exists" in str(exc):
            return Finding("functions", OK, f"the library {scripts.LIBRARY_NAME} is loaded",
                           name)
        unsupported = scripts.unsupported(_reply(exc))
        if unsupported is not None and not listable:
            return None  # it may be loaded already: the probe tells
        message = str(unsupported) if unsupported is not None else (
            "the library could not be loaded (FUNCTION LOAD failed)")
        return Finding("functions", PROBLEM, message, name)
    return Finding("functions", OK, f"the library {scripts.LIBRARY_NAME} was missing and is "
                                    "loaded now", name)


def _reply(exc: redis.ResponseError) -> str:
    """The server's error reply as sent: redis-py strips the codes it knows (ERR, NOPERM)."""
    text = str(exc)
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return f"NOPERM {text}"
    code = text.split(" ", 1)[0]
    return text if code.isupper() and code.isalpha() else f"ERR {text}"


def _flatten(reply: Any) -> list[Any]:
    if isinstance(reply, (list, tuple)):
        return [item for part in reply for item in _flatten(part)]
    if isinstance(reply, dict):
        return [item for pair in reply.items() for item in _flatten(list(pair))]
    return [reply]


def _probe(client: redis.Redis | RedisCluster, namespace: str, layout: str) -> Finding:
    """Create, read and kill one session with the functions an app runs: FCALL, the keys of
    the namespace, TIME and PUBLISH on its channel are then known to be permitted."""
    from .manager import RedisSessions

    rs = RedisSessions(client, namespace=namespace, wipe=0, layout=layout)
    try:
        token = rs.create(PROBE_APP, "rs-check", "127.0.0.1", ttl=10)
        try:
            read = rs.get(PROBE_APP, token)
        finally:
            rs.kill(PROBE_APP, token)
        if read is None or read["id"] != "rs-check":
            return Finding("operations", PROBLEM, "a probe session could not be read back")
    except BackendUnsupported as exc:
        return Finding("operations", PROBLEM, str(exc))
    except SessionError as exc:
        return Finding("operations", PROBLEM, f"a probe session failed: {exc}")
    finally:
        rs.close()
    return Finding("operations", OK, f"FCALL, the keys {namespace}:*, TIME and PUBLISH on "
                              f"{namespace}:cache work (a probe session was created, read and "
                              "killed)")


def _subscribe(client: redis.Redis | RedisCluster, namespace: str) -> Finding:
    """SUBSCRIBE to the cache channel (only ``cache_time > 0`` needs it)."""
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(f"{namespace}:cache")
        reply = pubsub.get_message(timeout=2.0)
        if reply is None or reply.get("type") != "subscribe":
            raise redis.ResponseError("no subscription confirmed")
    except redis.ResponseError as exc:
        return Finding("cache", WARNING, f"SUBSCRIBE on {namespace}:cache failed ({exc}): the "
                                         "local cache (cache_time > 0) would stay off")
    finally:
        pubsub.close()
    return Finding("cache", OK, f"SUBSCRIBE on {namespace}:cache works (the local cache's "
                                "invalidations)")


def run_checks(client: redis.Redis | RedisCluster, *, namespace: str, layout: str,
               replicas: int | None = None,
               progress: Callable[[Finding], None] | None = None) -> list[Finding]:
    """Every check against ``client`` (one server, or each master of a cluster); raises
    ``BackendUnavailable`` when a server cannot be reached."""
    from .wire import backend_error

    findings: list[Finding] = []

    def add(finding: Finding) -> None:
        findings.append(finding)
        if progress is not None:
            progress(finding)

    try:
        if isinstance(client, RedisCluster):
            nodes = [(node.name, client.get_redis_connection(node))
                     for node in client.get_primaries()]
        else:
            nodes = [("", client)]  # one server: its findings need no node name
        usable, unknown = True, False
        for name, node in nodes:
            server = _server_checks(name, node, layout, replicas)
            for finding in server:
                add(finding)
            library = _library(name, node)
            if library is None:
                unknown = True
            else:
                add(library)
            # the probe needs the library and a writable server the manager accepts
            usable = usable and (library is None or library.status == OK) and not any(
                f.status == PROBLEM and f.check in _BLOCKING for f in server)
        if usable:
            probe = _probe(client, namespace, layout)
            if unknown and "FUNCTION LOAD" in probe.message:
                add(Finding("functions", PROBLEM, probe.message))  # missing, and not loadable
                return findings
            if unknown:
                add(Finding("functions", probe.status, "this user may not list or load the "
                            "library; the probe below ran it" if probe.status == OK else
                            "this user may not list or load the library"))
            add(probe)
            add(_subscribe(client, namespace))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise backend_error(exc) from exc
    return findings
