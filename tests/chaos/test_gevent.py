"""gevent: greenlets cut short by gevent.Timeout and Greenlet.kill(), on the blocking wires,
with the manager built after the process patched (gunicorn -k gevent) and before
(gunicorn -k gevent --preload, uWSGI's default). Each run is a subprocess (gevent_run.py), so
pytest's own process is never monkeypatched; it is bounded by a timeout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .users import Tally, report

pytest.importorskip("gevent", reason="the gevent scenarios need gevent (the test extra)")

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 2.0


def gevent_scenario(name: str, url: str, namespace: str, cluster: bool, preload: bool) -> None:
    config = {"url": url, "namespace": namespace, "cluster": cluster, "preload": preload,
              "seconds": SECONDS}
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.chaos.gevent_run", json.dumps(config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 40)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name}: the gevent run hung (killed after {exc.timeout} s): {exc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if "Timeout (0:" in proc.stderr:  # faulthandler's dump_traceback_later fired
        pytest.fail(f"{name}: the gevent run hung; its threads:\n{proc.stderr[-4000:]}")
    assert proc.returncode == 0 and lines, f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1])
    timeouts = report(f"{name}, gevent.Timeout", [Tally.from_dict(result["timeouts"])])
    kills = report(f"{name}, Greenlet.kill()", [Tally.from_dict(result["kills"])])
    clean = report(f"{name}, clean pass", [Tally.from_dict(result["clean"])])
    assert result["stuck"] == 0, f"{result['stuck']} greenlets never finished"
    assert not result["errors"], result["errors"]
    assert timeouts.interrupted > 0 and kills.interrupted > 0, "nothing was interrupted"
    for tally in (timeouts, kills):
        assert (tally.wrong, tally.crashed) == (0, 0), tally.samples
        # with no fault but the interruptions, no other call fails: none left a connection
        # behind (a leak would end in redis-py's "Too many connections")
        assert tally.failed == 0, tally.failures
    assert (clean.wrong, clean.crashed, clean.failed) == (0, 0, 0), clean.samples + clean.failures


@pytest.mark.parametrize("preload", [False, True], ids=["patched-first", "preload"])
def test_blocking_single(chaos_url, chaos_ns, preload):
    gevent_scenario(f"gevent single ({'preload' if preload else 'patched first'})",
                    chaos_url, chaos_ns, False, preload)


@pytest.mark.parametrize("preload", [False, True], ids=["patched-first", "preload"])
def test_blocking_cluster(cluster, cluster_ns, preload):
    gevent_scenario(f"gevent cluster ({'preload' if preload else 'patched first'})",
                    cluster.url, cluster_ns, True, preload)
