"""The picker chooses the compiled core by default and the pure one when asked (in subprocesses,
so this process's imports do not matter)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# which core the picker chose, and where the compiled module (if it was imported) lives
PROBE = (
    "import json, sys, redis_sessions.core as c; m = sys.modules.get('redis_sessions._core'); "
    "print(json.dumps([c.IMPLEMENTATION, getattr(m, '__file__', '')]))"
)


def run(env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_SESSIONS_NO_EXTENSIONS"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.compiled
def test_compiled_is_the_default() -> None:
    if importlib.util.find_spec("redis_sessions._core") is None and not os.environ.get("CI"):
        pytest.skip("compiled core redis_sessions._core is not built (CI would fail here)")
    implementation, path = run({})
    assert implementation == "compiled"
    assert path.endswith((".so", ".pyd")), path


def test_no_extensions_gives_pure() -> None:
    implementation, path = run({"REDIS_SESSIONS_NO_EXTENSIONS": "1"})
    assert implementation == "pure"
    assert path == ""  # the compiled module is not even imported


def test_public_api_is_the_same(core_impl) -> None:
    from redis_sessions import _pycore

    assert sorted(core_impl.__all__) == sorted(_pycore.__all__)
    for name in _pycore.__all__:
        assert callable(getattr(core_impl, name)), name


def _installed(tmp_path, purelib: bool) -> dict[str, str]:
    """The package laid out as an install without its compiled module (its sources, and a
    dist-info whose WHEEL says how it was built); the environment that imports it."""
    import shutil
    from pathlib import Path

    import redis_sessions

    site = tmp_path / "site"
    shutil.copytree(Path(redis_sessions.__file__).parent, site / "redis_sessions",
                    ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd", "__pycache__"))
    info = site / "redis_sessions-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: redis-sessions\nVersion: 0.1.0\n")
    tag = "py3-none-any" if purelib else "cp311-cp311-linux_x86_64"
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: {str(purelib).lower()}\n"
                                f"Tag: {tag}\n")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_SESSIONS_NO_EXTENSIONS"}
    env["PYTHONPATH"] = str(site)
    return env


@pytest.mark.parametrize("purelib", [True, False], ids=["built-pure", "compiled-lost"])
def test_a_missing_compiled_core_warns_only_where_one_was_shipped(tmp_path, purelib) -> None:
    """A pure build (REDIS_SESSIONS_NO_EXTENSIONS at install time) imports quietly; a wheel
    that shipped the compiled core and lost it warns."""
    out = subprocess.run([sys.executable, "-W", "always", "-c", PROBE],
                         env=_installed(tmp_path, purelib), capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["pure", ""]
    warned = "compiled core not available" in out.stderr
    assert warned is not purelib, out.stderr
