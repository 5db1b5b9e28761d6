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
from collections.abc import Sequence
from importlib import resources

import hiredis

from .. import core

# what a command's argument may be (core.pack_command's rule)
Arg = bytes | str | int

# functions that only read: Redis lets them run when it is out of memory
_READ_ONLY = ("soid", "soapp", "activity")
# functions that only delete (a logout, the wipe): flagged to run when Redis is out of memory too,
# so a logout happens at maxmemory under noeviction, where every other write is refused
_ALLOW_OOM = ("kill", "killsoid", "killall", "wipe")
_NAMES = ("create", "create_anonymous", "rotate", "get", "set", "kill", "killsoid", "killall",
          "soid", "soapp", "activity", "wipe", "take")


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
