"""The session operations as one Redis Functions library, built once from the ``.lua`` files
beside this one.

``_lib.lua`` is what every function shares: Redis runs it once, when the library is loaded, not
on every call. Each other file is the body of one function (``FCALL`` with its keys and
arguments). The library's name carries a hash of its text, so processes of different releases
on one Redis each find their own. A server without it (new, restarted, flushed) answers
"Function not found": the wires then send ``LOAD`` ahead of the same call, in one round trip.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources

import hiredis

from .. import core
from ..errors import BackendUnsupported

# what a command's argument may be (core.pack_command's rule)
Arg = bytes | str | int

# functions that only read: Redis lets them run when it is out of memory
_READ_ONLY = ("soid", "soapp", "activity", "devices")
# functions that only delete (a logout, the wipe): flagged to run when Redis is out of memory too,
# so a logout happens at maxmemory under noeviction, where every other write is refused
_ALLOW_OOM = ("kill", "killsoid", "killall", "killdevice", "wipe")
_NAMES = ("create", "create_anonymous", "rotate", "get", "set", "kill", "killsoid", "killall",
          "soid", "soapp", "activity", "wipe", "take", "devices", "killdevice")


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


_SOURCES = {name: _read(f"{name}.lua") for name in ("_lib", *_NAMES)}
VERSION = hashlib.sha1(b"\0".join(_SOURCES[n] for n in ("_lib", *_NAMES))).hexdigest()[:12]
LIBRARY_NAME = f"redis_sessions_{VERSION}"


class Script:
    """One session function: its name in Redis, and whether a call may be sent twice.

    ``retry_safe``: running it twice does no harm, so a call whose connection was reset may be
    sent again once. Not so for create (a second session) nor the kills (the second run would
    report 0 sessions killed for a kill that happened).
    """

    __slots__ = ("name", "function", "retry_safe")

    def __init__(self, name: str, retry_safe: bool = True) -> None:
        self.name = name
        self.function = f"rs_{VERSION}_{name}".encode()
        self.retry_safe = retry_safe

    def pack(self, keys: Sequence[Arg], args: Sequence[Arg]) -> bytes:
        """The FCALL of this function with these keys and arguments, ready to send."""
        return core.pack_command([b"FCALL", self.function, len(keys), *keys, *args])

    def __repr__(self) -> str:
        return f"<Script {self.name} {VERSION}>"


def _registration(name: str) -> bytes:
    flags = (b"{'no-writes'}" if name in _READ_ONLY
             else b"{'allow-oom'}" if name in _ALLOW_OOM else b"{}")
    return (b"redis.register_function{function_name='rs_" + VERSION.encode() + b"_"
            + name.encode() + b"', flags=" + flags + b", callback=function(KEYS, ARGV)\n"
            + b"begin(KEYS, ARGV)\n" + _SOURCES[name] + b"\nend}\n")


LIBRARY = b"#!lua name=" + LIBRARY_NAME.encode() + b"\n" + _SOURCES["_lib"] + b"\n" + b"".join(
    _registration(name) for name in _NAMES)
# FUNCTION LOAD of the library: sent ahead of a call that found it missing
LOAD = core.pack_command([b"FUNCTION", b"LOAD", LIBRARY])


def is_missing(reply: object) -> bool:
    """The server lacks the library (an FCALL's error reply)."""
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("ERR Function not found")


def after_load(load_reply: object, reply: object) -> object:
    """The reply of a call sent after LOAD; when the library is still missing, the reason LOAD
    failed (an ACL refusal, say) instead. "Already exists": another process loaded it first."""
    if is_missing(reply) and isinstance(load_reply, hiredis.ReplyError):
        return load_reply
    return reply


#: what a server must offer, in the words of every BackendUnsupported
NEEDS = "Redis >= 7.0 or Valkey >= 7.2, with Redis Functions (FUNCTION LOAD and FCALL)"
# "ERR unknown command 'FCALL', with args ..." (Redis 7: quotes; Redis 6: backticks)
_UNKNOWN = re.compile(r"ERR unknown command [`']([^`']*)[`']", re.IGNORECASE)
# "NOPERM this user has no permissions to run the 'function|load' command" (Redis 7.0)
# "NOPERM User app has no permissions to run the 'fcall' command" (Redis 7.2+, Valkey)
_NOPERM_COMMAND = re.compile(r"permissions to run the '([a-z0-9|_-]+)' command", re.IGNORECASE)


def unsupported(message: str) -> BackendUnsupported | None:
    """The error for a reply saying this server cannot run the library (no Functions, or the
    ACL forbids FCALL, FUNCTION LOAD, the session keys or a command the functions run); None
    for any other reply. The message is ours: the reply would echo Lua, keys or tokens."""
    unknown = _UNKNOWN.match(message)
    if unknown is not None:
        command = unknown.group(1).upper()
        if command in ("FCALL", "FUNCTION"):
            return BackendUnsupported(
                f"this Redis cannot run redis-sessions: it does not know the {command} command "
                f"(a server older than Redis 7.0, or {command} renamed or disabled in its "
                f"configuration); redis-sessions needs {NEEDS}")
        return None
    lowered = message.lower()
    # an ACL refusal of the call itself (NOPERM), or of a command run inside a function:
    # "The user executing the script can't ..." (Redis 7.0), "ACL failure in script" (later)
    if not (message.startswith("NOPERM") or "the user executing the script can't" in lowered
            or "acl failure in script" in lowered):
        return None
    denied = _NOPERM_COMMAND.search(message)
    if denied is not None:
        command = denied.group(1).lower()
        if command == "function|load":
            return BackendUnsupported(
                "the Redis user may not run FUNCTION LOAD, and this server lacks the "
                "redis-sessions function library: grant +function|load (part of +@scripting), "
                "or load the library once as a user who may (`redis-sessions check --redis-url "
                "URL` loads it)")
        what = "FCALL, which runs every redis-sessions operation" if command == "fcall" else (
            f"the {command.upper()} command, which redis-sessions needs")
        return BackendUnsupported(f"the Redis user may not run {what}: grant +{command}")
    if "channel" in lowered:
        return BackendUnsupported(
            "the Redis user may not publish on the session channel: redis-sessions publishes "
            "invalidations on <namespace>:cache (grant &rs:cache for the namespace rs)")
    if "key" in lowered:
        return BackendUnsupported(
            "the Redis user may not access the session keys: redis-sessions keeps every key "
            "under its namespace (grant ~rs:* for the namespace rs)")
    return BackendUnsupported(
        "the Redis user may not run a command the redis-sessions functions run (TIME, PUBLISH, "
        "and hash, set and sorted-set commands on its keys): grant +@read +@write +@scripting "
        "+@pubsub +time")


CREATE = Script("create", retry_safe=False)
CREATE_ANONYMOUS = Script("create_anonymous", retry_safe=False)
ROTATE = Script("rotate", retry_safe=False)  # a second run would find the old token gone
GET = Script("get")
SET = Script("set")  # a repeated merge writes the same values again
KILL = Script("kill", retry_safe=False)
KILLSOID = Script("killsoid", retry_safe=False)
KILLALL = Script("killall", retry_safe=False)
SOID = Script("soid")
SOAPP = Script("soapp")
ACTIVITY = Script("activity")
WIPE = Script("wipe", retry_safe=False)  # cluster layout: one bucket's expired sessions
TAKE = Script("take", retry_safe=False)  # cluster layout: a log-in's first step
DEVICES = Script("devices")
KILLDEVICE = Script("killdevice", retry_safe=False)
