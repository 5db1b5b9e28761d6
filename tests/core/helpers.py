"""Shared helpers for the core tests: the pure twin as the reference, and outcome comparison."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, IntEnum
from typing import Any

from redis_sessions import _pycore as PURE

__all__ = ["PURE", "outcome", "Role", "Level", "Text", "Int", "Float", "HUGE", "nested"]


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("raises", (exception type name, message)), for comparing the twins."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the point is to compare any failure
        return ("raises", (type(exc).__name__, str(exc) if type(exc).__name__ == "ValidationError" else ""))


# Subclasses of the scalar types: stored as their base value, whatever they say of themselves.

class Role(str, Enum):
    ADMIN = "admin"


class Level(IntEnum):
    HIGH = 3


class Text(str):
    def __str__(self) -> str:
        return "not this"

    def __repr__(self) -> str:
        return "nor this"


class Int(int):
    def __repr__(self) -> str:
        return "not an int"

    def __eq__(self, other: object) -> bool:  # the base value is compared, never this
        return False

    __hash__ = int.__hash__


class Huge(int):
    """An int too long for int.__repr__ that still prints (for Hypothesis' reports)."""

    def __repr__(self) -> str:
        return f"Huge(<{self.bit_length()} bits>)"


HUGE = Huge(10**4300)


class Float(float):
    def __repr__(self) -> str:
        return "not a float"


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of containers, objects and lists alternating, around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value
