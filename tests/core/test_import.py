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
