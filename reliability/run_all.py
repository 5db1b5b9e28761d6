"""CI's entry point: the load run and the three faults, each bounded; non-zero when one fails.

    python reliability/run_all.py            # ~2.5 minutes on a 2-core machine
    python reliability/run_all.py --quick    # shorter runs (smoke test)

Prints each run's README table row at the end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    load_s, fault_s = ("6", "6") if quick else ("20", "15")
    runs = [
        ["--seconds", load_s, "--clients", "32"],
        ["--seconds", fault_s, "--clients", "32", "--fault", "kill"],
        ["--seconds", fault_s, "--clients", "32", "--fault", "pause"],
        ["--seconds", fault_s, "--clients", "32", "--fault", "reset"],
    ]
    rows, failed = [], 0
    started = time.monotonic()
    for args in runs:
        print(f"$ python reliability/load.py {' '.join(args)}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / "load.py"), *args], stdout=subprocess.PIPE,
                              text=True, timeout=300)
        print(proc.stdout, flush=True)
        last = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
        rows.append(last[-1] if last else f"| {' '.join(args)} | no summary (exit {proc.returncode}) |")
        failed += proc.returncode != 0
    print(f"all runs in {time.monotonic() - started:.0f} s; {failed} failed")
    print("| run | setup | throughput | faults / nothing lost | verdict |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
