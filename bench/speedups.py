"""Speed of the compiled core against its pure-Python twin, one row per hot path.

Run ``python bench/speedups.py``: both implementations are timed in this one process, pure and
compiled interleaved round by round (so a burst of load hits both), in nanoseconds per call: the
best round of each and the median of the per-round ratios. The README quotes it.

``--portable-sha`` measures a CPU without the x86 SHA extensions: the compiled core uses the C
SHA-256 such a CPU selects (``bmi2``, or ``portable`` on a CPU without BMI2; ``--portable-sha
portable`` forces the plain C one), and the script re-runs itself with ``OPENSSL_ia32cap``
masking the SHA bit so that the pure twin's ``hmac`` (OpenSSL) runs without them too
(``--keep-openssl-sha`` leaves OpenSSL alone: the compiled core's worst case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType

from redis_sessions import _core as compiled
from redis_sessions import _pycore as pure

# OPENSSL_ia32cap "<CPUID.1 mask>:<CPUID.7 mask>": "~" clears bits; bit 29 of CPUID.7 EBX is SHA.
OPENSSL_NO_SHA = ":~0x20000000"

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

# issue 12, goal 4: the compiled core at least this many times its pure twin
GOALS = {"sign+unsign": 5.0, "extract_token_signed": 5.0, "diff": 5.0, "diff_nested": 5.0,
         "encode_changes": 5.0, "encode_nested": 5.0, "parse_session": 3.0, "parse_nested": 3.0}


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


def loop_ns(fn: Callable[[], object], number: int) -> float:
    """ns per call of ``number`` calls in a row."""
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number


def calls_for(fn: Callable[[], object], seconds: float) -> int:
    """How many calls take about ``seconds``."""
    per_call = min(loop_ns(fn, 200) for _ in range(3))
    return max(20, int(seconds * 1e9 / per_call))


def measure(names: list[str], p: dict, c: dict, rounds: int, seconds: float) -> dict[str, tuple]:
    """(best pure ns, best compiled ns, median per-round ratio) per name, rounds interleaved."""
    numbers = {name: (calls_for(p[name], seconds), calls_for(c[name], seconds)) for name in names}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    for r in range(rounds):
        for name in names:
            np_, nc = numbers[name]
            first, second = (p, c) if r % 2 == 0 else (c, p)  # alternate which goes first
            t1 = loop_ns(first[name], np_ if first is p else nc)
            t2 = loop_ns(second[name], nc if first is p else np_)
            tp, tc = (t1, t2) if first is p else (t2, t1)
            times[name][0].append(tp)
            times[name][1].append(tc)
    return {name: (min(tp), min(tc), statistics.median(a / b for a, b in zip(tp, tc)))
            for name, (tp, tc) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portable-sha", nargs="?", const="bmi2", choices=["bmi2", "portable"],
                        help="no SHA-NI: the compiled core's C SHA-256 (bmi2 when the CPU has it, "
                             "or plain portable C) and OpenSSL's SHA-NI masked for the pure twin")
    parser.add_argument("--keep-openssl-sha", action="store_true",
                        help="with --portable-sha: leave OpenSSL's SHA-NI on (the pure twin's best case)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    parser.add_argument("--seconds", type=float, default=0.01, help="per timed loop (default 0.01)")
    parser.add_argument("names", nargs="*", help="rows to run (default: all)")
    args = parser.parse_args()
    if args.portable_sha and not args.keep_openssl_sha and os.environ.get("OPENSSL_ia32cap") != OPENSSL_NO_SHA:
        # OpenSSL reads its CPU mask once, when it loads: a fresh interpreter is needed
        env = dict(os.environ, OPENSSL_ia32cap=OPENSSL_NO_SHA)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if args.portable_sha:
        compiled._use_sha256_backend(args.portable_sha)
    p, c = cases(pure), cases(compiled)
    names = args.names or list(p)
    for name in names:
        assert p[name]() == c[name]() or name == "new_token", name
    openssl = os.environ.get("OPENSSL_ia32cap", "")
    print(f"# {sys.implementation.name} {sys.version.split()[0]}; compiled SHA-256: "
          f"{compiled._sha256_backend()}; OpenSSL SHA-NI: {'masked' if openssl == OPENSSL_NO_SHA else 'as the CPU has it'}"
          f"; {args.rounds} interleaved rounds, best round (ns/call) and median ratio")
    print(f"{'name':<22} {'pure_ns':>9} {'compiled_ns':>12} {'ratio':>7} {'goal':>6}")
    for name, (tp, tc, ratio) in measure(names, p, c, args.rounds, args.seconds).items():
        goal = GOALS.get(name)
        mark = "" if goal is None else f">={goal:.0f}x" + ("" if ratio >= goal else " MISSED")
        print(f"{name:<22} {tp:>9.0f} {tc:>12.0f} {ratio:>6.1f}x {mark:>6}")


if __name__ == "__main__":
    main()
