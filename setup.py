"""Build the compiled core ``redis_sessions._core`` from ``_core/_core.pyx``.

``REDIS_SESSIONS_NO_EXTENSIONS`` (any non-empty value) asks for the pure-Python build; it is read
the same way at import time (``redis_sessions/core.py``). Without it a failed compile fails the
build, with a message saying what is missing and how to ask for the pure build: a silent fallback
would ship a slow wheel nobody asked for.
"""

import os
import platform

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

NO_EXTENSIONS = bool(os.environ.get("REDIS_SESSIONS_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)

NEEDS_COMPILER = """\
redis-sessions: building the compiled core (redis_sessions._core) failed: {error}
It needs a C compiler and the Python headers: on Debian/Ubuntu `apt install gcc python3-dev`, on
Fedora `dnf install gcc python3-devel`, on macOS `xcode-select --install`, on Windows the Microsoft
C++ Build Tools. Or ask for the pure-Python build (same API, slower):
    REDIS_SESSIONS_NO_EXTENSIONS=1 pip install --no-binary redis-sessions redis-sessions"""


class BuildExt(build_ext):
    """build_ext whose compiler failure explains itself instead of ending in a raw compiler error."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError) as exc:
            raise PlatformError(NEEDS_COMPILER.format(error=exc)) from exc


if NO_EXTENSIONS:
    ext_modules = []
else:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [Extension("redis_sessions._core", ["_core/_core.pyx"])],
        # directives live in the .pyx header; the build only says where the output goes
        build_dir="build/cython",
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
