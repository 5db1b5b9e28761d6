"""Shared by the fuzz targets: both twins of the core, and a differential check.

Each target feeds the same input to the compiled core (when built) and the pure twin and fails
when either raises something other than the documented errors, or when they disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from redis_sessions import _pycore

try:
    from redis_sessions import _core as compiled
except ImportError:  # no compiled core: the pure twin alone is fuzzed
    compiled = None

TWINS = [("pure", _pycore)] + ([("compiled", compiled)] if compiled is not None else [])


def outcome(fn, *args):
    """("ok", result) or ("raised", exception type name)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        return ("raised", type(exc).__name__, str(exc))


def same(name: str, *args, allowed: tuple[str, ...] = ()):
    """Run core.<name>(*args) on every twin; they must agree, and raise only ``allowed``."""
    results = [(twin, outcome(getattr(mod, name), *args)) for twin, mod in TWINS]
    for twin, result in results:
        if result[0] == "raised" and result[1] not in allowed:
            raise AssertionError(f"{twin}.{name}{args!r:.300} raised {result[1]}: {result[2]}")
    first = results[0][1]
    for twin, result in results[1:]:
        # the same result, or the same exception (and for ValidationError the same message)
        if result[:2] != first[:2] or (result[1] == "ValidationError" and result[2] != first[2]):
            raise AssertionError(f"twins disagree on {name}{args!r:.300}: {results!r:.600}")
    return first


def main(test_one_input) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


ROOT = Path(__file__).resolve().parent.parent
