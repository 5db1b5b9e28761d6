"""Picks the compiled core (``redis_sessions._core``) or its pure-Python twin, once, at import.

``REDIS_SESSIONS_NO_EXTENSIONS`` (any non-empty value) forces the pure twin, read the same way
as ``setup.py`` reads it; interpreters other than CPython always get the pure twin. The rest of
the package imports the core only from here. ``IMPLEMENTATION`` says which one is in use.
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import TYPE_CHECKING

NO_EXTENSIONS = bool(os.environ.get("REDIS_SESSIONS_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)

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
        warnings.warn(
            f"redis_sessions: compiled core not available ({exc}); using the pure-Python core. "
            "Set REDIS_SESSIONS_NO_EXTENSIONS=1 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        from ._pycore import *  # noqa: F403

        IMPLEMENTATION = "pure"
