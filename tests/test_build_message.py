"""Building from source without a working C compiler fails with a message that says what is
missing and how to ask for the pure-Python build; the pure build, asked for, needs no compiler.

Each build runs ``pip wheel`` (with its usual build isolation, so setuptools and Cython come from
pyproject's [build-system]) on a temporary copy of the source, so src/ and its .so are untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "_core"]
PURE_BUILD = "REDIS_SESSIONS_NO_EXTENSIONS=1 pip install --no-binary redis-sessions redis-sessions"
NO_CC = "/nonexistent/cc"

pytestmark = pytest.mark.slow


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of what a source build needs (no .so, no build/ directory)."""
    if not (ROOT / "setup.py").exists():
        pytest.skip("no source tree here (the tests run from an installed wheel)")
    copy = tmp_path / "src-copy"
    copy.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, copy / name)
        else:
            shutil.copy2(path, copy / name)
    shutil.copytree(ROOT / "src" / "redis_sessions", copy / "src" / "redis_sessions",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return copy


def _wheel(source: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_SESSIONS_NO_EXTENSIONS"}
    environ.update(CC=NO_CC, PIP_DISABLE_PIP_VERSION_CHECK="1", **env)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(source)],
        env=environ, capture_output=True, text=True, timeout=600,
    )
    log = result.stdout + result.stderr
    if "Could not find a version that satisfies" in log or "Failed to establish" in log:
        pytest.skip("pip could not fetch the build requirements (setuptools, Cython)")
    return result


def test_without_a_compiler_the_build_fails_and_says_why(source: Path, tmp_path: Path) -> None:
    result = _wheel(source, tmp_path / "wheels")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert not list((tmp_path / "wheels").glob("*.whl"))  # no silent pure fallback
    assert "building the compiled core (redis_sessions._core) failed" in log
    assert "It needs a C compiler and the Python headers" in log
    assert PURE_BUILD in log
    assert NO_CC in log  # the compiler's own error is kept, after the explanation's first line


def test_the_pure_build_asked_for_needs_no_compiler(source: Path, tmp_path: Path) -> None:
    result = _wheel(source, tmp_path / "wheels", REDIS_SESSIONS_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")  # pure: no compiled core inside
