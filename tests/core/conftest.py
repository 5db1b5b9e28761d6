"""The one implementation fixture: every core test runs against the compiled module and the pure
twin, imported directly (not through the picker), so REDIS_SESSIONS_NO_EXTENSIONS does not hide
the compiled one. A missing compiled module is a skip with its reason, and a failure on CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), pytest.param("pure")],
)
def core_impl(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "pure":
        return importlib.import_module("redis_sessions._pycore")
    try:
        return importlib.import_module("redis_sessions._core")
    except ImportError as exc:
        reason = f"compiled core redis_sessions._core cannot be imported: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: a missing compiled core is an error)")
        pytest.skip(reason)
