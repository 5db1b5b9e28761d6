"""Stored vectors (made by gen_vectors.py with the pure twin) checked against both twins."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

VECTORS = json.loads(pathlib.Path(__file__).with_name("vectors.json").read_text())


def dec(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$bytes"}:
            return bytes.fromhex(obj["$bytes"])
        return {k: dec(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [dec(x) for x in obj]
    return obj


CASES = [(fn, i, c) for fn, cases in VECTORS.items() for i, c in enumerate(cases)]


@pytest.mark.parametrize("fn, i, case", CASES, ids=[f"{fn}-{i}" for fn, i, _ in CASES])
def test_vector(core_impl, fn: str, i: int, case: dict[str, Any]) -> None:
    args = dec(case["args"])
    expected = case["result"]
    if isinstance(expected, dict) and set(expected) == {"$raises"}:
        with pytest.raises(Exception) as info:
            getattr(core_impl, fn)(*args)
        assert type(info.value).__name__ == expected["$raises"]
    else:
        assert getattr(core_impl, fn)(*args) == dec(expected)


def test_vectors_are_current() -> None:
    from . import gen_vectors

    assert json.loads(json.dumps(gen_vectors.build())) == VECTORS
