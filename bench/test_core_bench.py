"""pytest-benchmark of the core's hot paths, each for both twins (``pytest bench/``).

Benchmark names are unique: ``test_<path>[compiled]`` and ``test_<path>[pure]``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from speedups import CHANGED, DATA, HEADER, KEY, OLD_KEY, REPLY, SIGNED_HEADER, TOKEN


@pytest.fixture(scope="module", params=[pytest.param("compiled", marks=pytest.mark.compiled), "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    name = "redis_sessions._core" if request.param == "compiled" else "redis_sessions._pycore"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} cannot be imported: {exc}")


def test_new_token(benchmark, impl) -> None:
    benchmark(impl.new_token)


def test_sign_unsign(benchmark, impl) -> None:
    assert benchmark(lambda: impl.unsign(impl.sign(TOKEN, KEY), [KEY])) == TOKEN


def test_extract_token(benchmark, impl) -> None:
    assert benchmark(impl.extract_token, HEADER, "myapp", None) == TOKEN


def test_extract_token_signed(benchmark, impl) -> None:
    assert benchmark(impl.extract_token, SIGNED_HEADER, "myapp", [OLD_KEY, KEY]) == TOKEN


def test_diff(benchmark, impl) -> None:
    assert len(benchmark(impl.diff, DATA, CHANGED)) == 2


def test_diff_unchanged(benchmark, impl) -> None:
    assert benchmark(impl.diff, DATA, dict(DATA)) == []


def test_parse_session(benchmark, impl) -> None:
    assert benchmark(impl.parse_session, REPLY)["d"] == DATA


def test_encode_changes(benchmark, impl) -> None:
    benchmark(impl.encode_changes, CHANGED)
