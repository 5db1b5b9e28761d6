"""The Lua scripts of the session operations, read once from the ``.lua`` files beside this one.

Each script is ``_lib.lua`` followed by its own file; its SHA1 is computed here, so the scripts
run by EVALSHA from the first call and are sent whole (EVAL) only after a NOSCRIPT reply.
"""

from __future__ import annotations

import hashlib
from importlib import resources


class Script:
    """One session script: its name, full body and SHA1 (both as bytes, ready to send).

    ``retry_safe``: running it twice does no harm, so a call whose connection was reset may be
    sent again once. Not so for create (a second session) nor the kills (the second run would
    report 0 sessions killed for a kill that happened).
    """

    __slots__ = ("name", "body", "sha", "retry_safe")

    def __init__(self, name: str, body: bytes, retry_safe: bool) -> None:
        self.name = name
        self.body = body
        self.sha = hashlib.sha1(body).hexdigest().encode()
        self.retry_safe = retry_safe

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha.decode()[:8]}>"


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def _load(name: str, retry_safe: bool = True) -> Script:
    return Script(name, _read("_lib.lua") + b"\n" + _read(f"{name}.lua"), retry_safe)


CREATE = _load("create", retry_safe=False)
CREATE_ANONYMOUS = _load("create_anonymous", retry_safe=False)
ROTATE = _load("rotate", retry_safe=False)  # a second run would find the old token gone
GET = _load("get")
SET = _load("set")  # a repeated merge writes the same values again
KILL = _load("kill", retry_safe=False)
KILLSOID = _load("killsoid", retry_safe=False)
KILLALL = _load("killall", retry_safe=False)
SOID = _load("soid")
SOAPP = _load("soapp")
ACTIVITY = _load("activity")
WIPE = _load("wipe", retry_safe=False)  # cluster layout: one bucket's expired sessions
TAKE = _load("take", retry_safe=False)  # cluster layout: a log-in's first step
