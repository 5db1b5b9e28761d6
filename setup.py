"""Build the compiled core ``redis_sessions._core`` from ``_core/_core.pyx``.

``REDIS_SESSIONS_NO_EXTENSIONS`` (any non-empty value) asks for the pure-Python build; it is read
the same way at import time (``redis_sessions/core.py``). Without it a failed compile fails the
build: a silent fallback would ship a slow wheel nobody asked for.
"""

import os
import platform

from setuptools import Extension, setup

NO_EXTENSIONS = bool(os.environ.get("REDIS_SESSIONS_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)

if NO_EXTENSIONS:
    ext_modules = []
else:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [Extension("redis_sessions._core", ["_core/_core.pyx"])],
        # directives live in the .pyx header; the build only says where the output goes
        build_dir="build/cython",
    )

setup(ext_modules=ext_modules)
