"""Shared helpers for the core tests: the pure twin as the reference, and outcome comparison."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis_sessions import _pycore as PURE

__all__ = ["PURE", "outcome"]


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("raises", (exception type name, message)), for comparing the twins."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the point is to compare any failure
        return ("raises", (type(exc).__name__, str(exc) if type(exc).__name__ == "ValidationError" else ""))
