"""The Lua scripts of the session operations, read once from the ``.lua`` files beside this one.

Each script is ``_lib.lua`` followed by its own file; its SHA1 is computed here, so the scripts
run by EVALSHA from the first call and are sent whole (EVAL) only after a NOSCRIPT reply.
"""

from __future__ import annotations

import hashlib
from importlib import resources


class Script:
    """One session script: its name, full body and SHA1 (both as bytes, ready to send)."""

    __slots__ = ("name", "body", "sha")

    def __init__(self, name: str, body: bytes) -> None:
        self.name = name
        self.body = body
        self.sha = hashlib.sha1(body).hexdigest().encode()

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha.decode()[:8]}>"


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def _load(name: str) -> Script:
    return Script(name, _read("_lib.lua") + b"\n" + _read(f"{name}.lua"))


CREATE = _load("create")
GET = _load("get")
SET = _load("set")
KILL = _load("kill")
KILLSOID = _load("killsoid")
KILLALL = _load("killall")
SOID = _load("soid")
SOAPP = _load("soapp")
ACTIVITY = _load("activity")
