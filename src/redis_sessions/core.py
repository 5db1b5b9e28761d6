"""Picks the compiled core (``redis_sessions._core``) or its pure-Python twin, once, at import.

``REDIS_SESSIONS_NO_EXTENSIONS`` (any non-empty value) forces the pure twin, read the same way
as ``setup.py`` reads it; interpreters other than CPython always get the pure twin. The rest of
the package imports the core only from here. ``IMPLEMENTATION`` says which one is in use.
A compiled core missing from an install that shipped one is a fault, and warns; an install
built pure (the switch set at install time: a ``py3-none-any`` wheel) falls back quietly.
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import TYPE_CHECKING

NO_EXTENSIONS = bool(os.environ.get("REDIS_SESSIONS_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)


def _built_pure() -> bool:
    """Whether the installed distribution was built without the compiled core (its wheel is
    pure: ``Root-Is-Purelib: true``), so that a missing ``_core`` is what was asked for."""
    from importlib import metadata

    try:
        wheel = metadata.distribution("redis-sessions").read_text("WHEEL") or ""
    except metadata.PackageNotFoundError:  # a source tree on sys.path: nothing to go by
        return False
    return "Root-Is-Purelib: true" in wheel


if TYPE_CHECKING:
    from ._pycore import *  # noqa: F403  (type checkers read the typed twin)

    IMPLEMENTATION: str
elif NO_EXTENSIONS:
    from ._pycore import *  # noqa: F403

    IMPLEMENTATION = "pure"
else:
    try:
        from ._core import *  # noqa: F403

        IMPLEMENTATION = "compiled"
    except ImportError as exc:  # an install without the compiled module (no wheel fitted)
        if not _built_pure():
            warnings.warn(
                f"redis_sessions: compiled core not available ({exc}); using the pure-Python "
                "core. Set REDIS_SESSIONS_NO_EXTENSIONS=1 to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
        from ._pycore import *  # noqa: F403

        IMPLEMENTATION = "pure"
