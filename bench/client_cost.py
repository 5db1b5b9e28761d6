"""Instructions the app's own process runs per request (callgrind): the Python side of a session.

    python bench/client_cost.py [--requests 500] [--redis-url URL] [--baseline-python PATH]

Wall time on a shared 2-core machine spreads as wide as the differences this is meant to show, so
this counts instructions instead (valgrind's callgrind, user space: the same from run to run).
Each case runs twice under callgrind in a child process, once with ``--requests`` requests and
once with none (the same imports, warm-up and set-up); the difference divided by the requests is
the cost of one request (``PYTHONHASHSEED=0`` in the children, so that a run repeats to within
a few hundred instructions). Cases: the WSGI middleware with a session cookie, a view that reads one
value (a hot load) and one that writes one value without reading (a blind write); and without a
cookie. ``--baseline-python`` runs the same cases with another interpreter's redis-sessions
(e.g. a venv holding an earlier release) against the same server, for a before/after in one run.
The system calls themselves (the round trip) are kernel time and not counted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile

CASES = ("read", "write", "no cookie")
APP = "clientcost"


def child(case: str, requests: int, url: str) -> None:
    """Run ``requests`` requests of ``case`` after the same set-up and warm-up whatever their
    number (this runs under callgrind, with whichever redis-sessions the interpreter has)."""
    from redis_sessions import RedisSessions
    from redis_sessions.wsgi import SessionMiddleware, get_session

    counter = itertools.count()

    def view(environ: dict, start_response) -> list[bytes]:
        session = get_session(environ)
        if case == "write":
            session["n"] = next(counter)
        else:
            session.get("n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    manager = RedisSessions(url, namespace="clientcost", wipe=0)
    token = manager.create(APP, "bench-user", "127.0.0.1", d={"n": 0})
    cookie = {} if case == "no cookie" else {"HTTP_COOKIE": f"{APP}={token}"}
    app = SessionMiddleware(view, app_name=APP, sessions=manager)

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        pass

    def run(n: int) -> None:
        for _ in range(n):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "bench",
                       "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                       "REMOTE_ADDR": "127.0.0.1", **cookie}
            body = app(environ, start_response)
            for _ in body:
                pass
            getattr(body, "close", lambda: None)()

    run(50)  # warm-up: the library loaded, the eviction check done, caches filled
    run(requests)
    manager.close()


def instructions(python: str, case: str, requests: int, url: str) -> int:
    """The instructions one child run executed (callgrind's total, user space)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
             python, os.path.abspath(__file__), "--child", case, str(requests), url],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict layouts in every run
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_request(python: str, case: str, requests: int, url: str) -> float:
    return (instructions(python, case, requests, url) - instructions(python, case, 0, url)) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--redis-url", help="use this Redis (default: a private server)")
    parser.add_argument("--baseline-python", help="also run the cases with this interpreter")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, requests, url = args.child
        child(case, int(requests), url)
        return 0

    from _common import private_redis

    pythons = {"this install": sys.executable}
    if args.baseline_python:
        pythons["baseline"] = args.baseline_python
    with private_redis(args.redis_url) as url:
        rows = {case: {name: per_request(python, case, args.requests, url)
                       for name, python in pythons.items()} for case in CASES}
    print(f"instructions per request in the app's process (callgrind, user space; "
          f"{args.requests} requests, WSGI middleware)")
    header = "| case | " + " | ".join(pythons) + (" | this / baseline |" if len(pythons) > 1 else " |")
    print(header)
    print("|---" + "|---:" * (header.count("|") - 2) + "|")
    for case, row in rows.items():
        cells = " | ".join(f"{row[name]:,.0f}" for name in pythons)
        ratio = f" | {row['this install'] / row['baseline']:.2f}x" if len(pythons) > 1 else ""
        print(f"| {case} | {cells}{ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
