#!/bin/sh
# Run every fuzz target for SECONDS each (default 60); non-zero when one fails or finds a crash
# (a crash-* reproducer is then copied next to this script).
#   fuzz/run_all.sh 30            PYTHON=.venv/bin/python fuzz/run_all.sh 30
set -u
SECONDS_EACH="${1:-60}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python}"
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
WORK="$(mktemp -d)"
status=0
for target in "$HERE"/fuzz_*.py; do
    name="$(basename "$target" .py)"
    mkdir -p "$WORK/$name"
    (cd "$WORK/$name" && "$PYTHON" "$target" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
        > "$WORK/$name.log" 2>&1)
    rc=$?
    echo "== $name (${SECONDS_EACH}s): exit $rc; $(grep -E '^Done' "$WORK/$name.log" | tail -n 1)"
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$WORK/$name.log"
        status=1
    fi
    if ls "$WORK/$name"/crash-* >/dev/null 2>&1; then
        echo "!! $name found a crash: $(ls "$WORK/$name"/crash-*)"
        cp "$WORK/$name"/crash-* "$HERE"/ 2>/dev/null
        status=1
    fi
done
rm -rf "$WORK"
exit $status
