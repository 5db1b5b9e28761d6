"""Compare two pytest-benchmark JSON files: median new/base per benchmark, as a Markdown table.

``python tools/compare_bench.py base.json new.json`` prints the table (bench.yml appends it to the
job summary). A ratio above 1 is slower than the base. It reports; it does not fail the build:
shared CI runners are too noisy for a hard threshold.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLAG_SLOWER = 1.10  # marked in the table, not enforced
FLAG_FASTER = 0.90


def medians(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["fullname"]: b["stats"]["median"] for b in data.get("benchmarks", [])}


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def report(base: dict[str, float], new: dict[str, float]) -> str:
    lines = [
        "| benchmark | base median | new median | new/base |",
        "|---|---:|---:|---:|",
    ]
    for name in sorted(new.keys() & base.keys()):
        ratio = new[name] / base[name]
        mark = " slower" if ratio > FLAG_SLOWER else " faster" if ratio < FLAG_FASTER else ""
        lines.append(
            f"| `{name}` | {fmt_time(base[name])} | {fmt_time(new[name])} | {ratio:.2f}{mark} |"
        )
    for name in sorted(new.keys() - base.keys()):
        lines.append(f"| `{name}` | (new) | {fmt_time(new[name])} | |")
    for name in sorted(base.keys() - new.keys()):
        lines.append(f"| `{name}` | {fmt_time(base[name])} | (gone) | |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: compare_bench.py BASE.json NEW.json", file=sys.stderr)
        return 2
    print(report(medians(Path(argv[1])), medians(Path(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
