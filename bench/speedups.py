"""Speed of the compiled core against its pure-Python twin, one row per hot path.

Run ``python bench/speedups.py``: both implementations are timed in this one process, each
figure the median over repeats of a timeit loop, in nanoseconds per call. The README quotes it.
"""

from __future__ import annotations

import json
import statistics
import sys
import timeit
from collections.abc import Callable
from types import ModuleType

from redis_sessions import _core as compiled
from redis_sessions import _pycore as pure

REPEATS = 15
TARGET_SECONDS = 0.02  # per repeat

KEY = b"k" * 32
OLD_KEY = b"o" * 32
TOKEN = pure.token_from_random(bytes(range(64)), 1_700_000_000_000)
assert TOKEN is not None
SIGNED = pure.sign(TOKEN, KEY)
# a realistic Cookie header: five cookies, the session cookie fourth
HEADER = f"_ga=GA1.2.1234567890.1700000000; theme=dark; lang=en-US; myapp={TOKEN}; _gid=GA1.2.99"
SIGNED_HEADER = HEADER.replace(TOKEN, SIGNED)
DATA = {f"field{i}": (f"value number {i}" if i % 3 else i * 1000 + 7) for i in range(10)}
CHANGED = dict(DATA, field4="changed")
REPLY = [b"user-42", 3, 1, 7200, 12, b"10.0.0.1", json.dumps(DATA).encode(), 0]
# nested data: a cart of items and a preferences object; the change is an in-place append
NESTED = {"user": "ada", "cart": [{"sku": f"sku-{i}", "qty": i + 1, "price": 9.99 * i} for i in range(5)],
          "prefs": {"theme": "dark", "tags": ["a", "b", "c"], "limits": {"daily": 10, "ok": True}}}
NESTED_SNAP = pure.snapshot(NESTED)
NESTED_CHANGED = json.loads(json.dumps(NESTED))
NESTED_CHANGED["cart"].append({"sku": "new", "qty": 1, "price": 1.5})
NESTED_REPLY = [b"user-42", 3, 1, 7200, 12, b"10.0.0.1", json.dumps(NESTED).encode(), 0]


def cases(m: ModuleType) -> dict[str, Callable[[], object]]:
    return {
        "new_token": m.new_token,
        "sign+unsign": lambda: m.unsign(m.sign(TOKEN, KEY), [KEY]),
        "extract_token": lambda: m.extract_token(HEADER, "myapp", None),
        "extract_token_signed": lambda: m.extract_token(SIGNED_HEADER, "myapp", [OLD_KEY, KEY]),
        "diff": lambda: m.diff(DATA, CHANGED),
        "diff_unchanged": lambda: m.diff(DATA, DATA),
        "parse_session": lambda: m.parse_session(REPLY),
        "encode_changes": lambda: m.encode_changes(CHANGED),
        "pack_command": lambda: m.pack_command([b"EVALSHA", b"a" * 40, 2, "rs:app:" + TOKEN, 7200]),
        "check_value": lambda: m.check_value("field1", "value number 1"),
        "snapshot_nested": lambda: m.snapshot(NESTED),
        "diff_nested": lambda: m.diff(NESTED_SNAP, NESTED_CHANGED),
        "diff_nested_same": lambda: m.diff(NESTED_SNAP, NESTED),
        "parse_nested": lambda: m.parse_session(NESTED_REPLY),
        "encode_nested": lambda: m.encode_changes(NESTED),
    }


def median_ns(fn: Callable[[], object]) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * TARGET_SECONDS / 0.2))
    return statistics.median(t / number * 1e9 for t in timer.repeat(REPEATS, number))


def main() -> None:
    print(f"# {sys.implementation.name} {sys.version.split()[0]}; "
          f"compiled SHA-256: {compiled._sha256_backend()}; median of {REPEATS} repeats")
    print(f"{'name':<22} {'pure_ns':>9} {'compiled_ns':>12} {'ratio':>7}")
    pure_cases, compiled_cases = cases(pure), cases(compiled)
    for name, fn in pure_cases.items():
        assert fn() == compiled_cases[name]() or name == "new_token", name
        p = median_ns(fn)
        c = median_ns(compiled_cases[name])
        print(f"{name:<22} {p:>9.0f} {c:>12.0f} {p / c:>6.1f}x")


if __name__ == "__main__":
    main()
