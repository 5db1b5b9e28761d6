"""Load, and faults during load, against a small app under gunicorn on loopback.

    python reliability/load.py --seconds 20 --clients 32            # load + the bare baseline
    python reliability/load.py --seconds 15 --fault kill|pause|reset  # one fault during load

A private Redis (tests/redis_server.py) is started on a free port unless REDIS_URL is set (faults
need the private one). gunicorn (reliability/gunicorn.conf.py: 2 gthread workers) serves
reliability/app.py on a free 127.0.0.1 port. Each client thread has one keep-alive connection and
two "devices" (two cookies) of its own user id, and mixes login, read, write, logout and
logout-all. Every device writes increasing values of its counter ``n``; the client remembers the
last value the app acknowledged (200) and the last it attempted. Checks, each a non-zero exit:

* no 500 and no connection error, ever; no 503/degraded answer outside the fault window;
* reads and the final state (read straight from Redis with RedisSessions.soid) hold, for each
  live session, a counter in [last acknowledged, last attempted] (an attempt that timed out may
  still have been applied), so "lost" = below the last acknowledged value, or a session gone that
  nothing killed; sessions logged out (or logged out everywhere) are gone (no zombies); no session
  exists that no device holds (no orphan) unless a login failed mid-fault;
* kill: the server restarts empty (no persistence), so sessions created before the restart are
  legitimately gone; "lost" is judged for the sessions logged in after the server came back
  (every write acknowledged after the restart must be there), and no write to a pre-restart
  session may be acknowledged after the restart;
* faults: the longest request overlapping the outage stays under the bound derived from the
  socket timeout, and a session write (login or write) succeeds within 1 s of the server's return.

The last line printed is a row for the README's Reliability table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from redis_sessions import RedisSessions  # noqa: E402
from redis_sessions.embedded import free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

APP_NAME = "loadtest"
RECOVERY_LIMIT = 1.0  # seconds from the server's return to the first successful session write
OUTAGE = 2.0  # seconds the server stays down (kill) or stopped (pause)
# A request makes at most two Redis round trips that can each wait the socket timeout (the load,
# then a save/create/kill); on top, a scheduling margin for 32 client threads + 2 workers on 2 cores.
ROUND_TRIPS = 2
MARGIN = 0.5


@dataclass
class Rec:
    op: str
    start: float
    end: float
    status: int
    degraded: bool = False  # an answer of the error policy: 503, or anonymous with no cookie change
    note: str = ""


@dataclass
class Device:
    user: str
    token: str | None = None
    acked: int = 0
    attempted: int = 0
    login_start: float = 0.0
    uncertain: bool = False  # a logout answered 503: it may or may not have happened
    killed_elsewhere: bool = False  # the other device logged out everywhere
    counter: int = 0


@dataclass
class Stats:
    recs: list[Rec] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    dead_tokens: set[str] = field(default_factory=set)
    all_tokens: list[str] = field(default_factory=list)
    failed_logins: int = 0
    acked_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violate(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 10_000:
                self.violations.append(text)


class Fault:
    """Times of the fault: ``start`` when the server went away, ``back`` when it returned."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.back: float | None = None
        self.detail = ""


def parse_cookie(headers: list[tuple[str, str]]) -> str | None:
    """The value our cookie was set to ("" when expired), or None when it was not touched."""
    value = None
    for name, header in headers:
        if name.lower() == "set-cookie" and header.startswith(APP_NAME + "="):
            value = header.split(";", 1)[0][len(APP_NAME) + 1 :]
    return value


class Client(threading.Thread):
    def __init__(self, index: int, port: int, deadline: float, max_requests: int, stats: Stats,
                 fault_name: str | None, fault: Fault, mode: str, http_timeout: float) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.port = port
        self.deadline = deadline
        self.max_requests = max_requests
        self.stats = stats
        self.fault_name = fault_name
        self.fault = fault
        self.mode = mode
        self.http_timeout = http_timeout
        user = f"user{index}-{secrets.token_hex(3)}"
        self.devices = [Device(user), Device(user)]
        self.rng = random.Random(index)
        self.recs: list[Rec] = []
        self.conn: http.client.HTTPConnection | None = None

    # -- HTTP ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, device: Device) -> tuple[int, dict, str | None, float, float]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.http_timeout)
        headers = {"Cookie": f"{APP_NAME}={device.token}"} if device.token else {}
        start = time.monotonic()
        try:
            self.conn.request(method, path, headers=headers)
            response = self.conn.getresponse()
            body = response.read()
            end = time.monotonic()
        except (OSError, http.client.HTTPException) as exc:
            end = time.monotonic()
            self.conn.close()
            self.conn = None
            self.stats.violate(f"client {self.index}: {method} {path}: connection error {exc!r} "
                               f"after {end - start:.3f}s")
            return 0, {}, None, start, end
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        return response.status, payload, parse_cookie(response.getheaders()), start, end

    # -- one operation -------------------------------------------------------------------------

    def gone(self, device: Device, op: str, start: float) -> str:
        """The session of ``device`` was found gone: explain it, or record a violation."""
        token = device.token
        device.token = None
        if device.killed_elsewhere or device.uncertain:
            return "gone-expected"
        # the restarted server is empty: a session logged in before it came back may be gone,
        # also in the moment between its return and ``fault.back`` being recorded
        if (self.fault_name == "kill" and self.fault.start is not None
                and device.login_start < (self.fault.back or math.inf)):
            return "gone-restart"
        if self.mode == "bare":
            return "gone"
        self.stats.violate(f"client {self.index}: session {token[:8]}... vanished on {op} "
                           f"(acked n={device.acked})")
        return "gone-lost"

    def step(self) -> None:
        devices = self.devices
        device = self.rng.choice(devices)
        other = devices[1] if device is devices[0] else devices[0]
        if device.token is None:
            op = "login"
        else:
            r = self.rng.random()
            op = "write" if r < 0.5 else "read" if r < 0.85 else "logout" if r < 0.96 else "logout-all"
        if op == "login":
            status, body, cookie, start, end = self.request("POST", f"/login?user={device.user}", device)
            rec = Rec(op, start, end, status)
            if status == 200 and cookie:
                if self.mode == "session" and (cookie in self.stats.dead_tokens or cookie == other.token):
                    self.stats.violate(f"client {self.index}: login reused token {cookie[:8]}...")
                device.token = cookie
                device.acked = device.attempted = 0
                device.login_start = start
                device.uncertain = device.killed_elsewhere = False
                self.stats.all_tokens.append(cookie)
            elif status == 503:
                rec.degraded = True
                with self.stats.lock:
                    self.stats.failed_logins += 1
            self.recs.append(rec)
            return
        if op == "read":
            status, body, cookie, start, end = self.request("GET", "/read", device)
            rec = Rec(op, start, end, status)
            if status == 200 and "n" in body:
                n = body["n"]
                if self.mode == "session" and not device.acked <= n <= device.attempted:
                    self.stats.violate(f"client {self.index}: read n={n}, acked {device.acked}, "
                                       f"attempted {device.attempted}")
                device.uncertain = False
            elif status == 200 and cookie == "":
                rec.note = self.gone(device, op, start)
            elif status == 200:
                rec.degraded = True  # anonymous for this request: Redis could not be reached
            self.recs.append(rec)
            return
        if op == "write":
            device.counter += 1
            n = device.counter
            device.attempted = n
            status, body, cookie, start, end = self.request("POST", f"/write?n={n}", device)
            rec = Rec(op, start, end, status)
            if status == 200:
                device.acked = n
                device.uncertain = False
                with self.stats.lock:
                    self.stats.acked_writes += 1
                if (self.fault_name == "kill" and self.fault.back is not None
                        and device.login_start < self.fault.start < start):
                    self.stats.violate(f"client {self.index}: a write to a pre-restart session "
                                       "was acknowledged after the restart")
            elif status == 401 and cookie == "":
                rec.note = self.gone(device, op, start)
            else:
                rec.degraded = status in (401, 503)
            self.recs.append(rec)
            return
        # logout / logout-all
        status, body, cookie, start, end = self.request("POST", "/" + op, device)
        rec = Rec(op, start, end, status)
        if status == 200 and cookie == "":
            if body.get("killed", 0) >= 1:
                with self.stats.lock:
                    self.stats.dead_tokens.add(device.token)
                device.token = None
                if op == "logout-all" and other.token is not None:
                    other.killed_elsewhere = True
            else:
                rec.note = self.gone(device, op, start)
        elif status == 503:
            rec.degraded = True
            device.uncertain = True
            if op == "logout-all":
                other.uncertain = True
        elif status == 200:
            rec.degraded = True  # anonymous: nothing was killed, the cookie is kept
        self.recs.append(rec)

    def run(self) -> None:
        count = 0
        while time.monotonic() < self.deadline and count < self.max_requests:
            self.step()
            count += 1
        if self.conn is not None:
            self.conn.close()


# -- processes ---------------------------------------------------------------------------------


def start_gunicorn(mode: str, redis_url: str, namespace: str, socket_timeout: float,
                   on_backend_error: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, RS_LOAD_MODE=mode, REDIS_URL=redis_url, RS_LOAD_NAMESPACE=namespace,
               RS_SOCKET_TIMEOUT=str(socket_timeout), RS_ON_BACKEND_ERROR=on_backend_error,
               RS_LOAD_BIND=f"127.0.0.1:{port}", PYTHONPATH=str(ROOT))
    gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-c",
           str(ROOT / "reliability" / "gunicorn.conf.py"), "reliability.app:application"]
    process = subprocess.Popen(cmd, env=env, cwd=str(ROOT))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited at start ({process.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/read")
            if conn.getresponse().status == 200:
                conn.close()
                # both workers up: a few more probes land on fresh connections
                time.sleep(0.5)
                return process, port
        except OSError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("gunicorn did not answer within 20 s")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- faults ------------------------------------------------------------------------------------


def run_fault(name: str, server: RedisServer, url: str, fault: Fault, at: float) -> None:
    time.sleep(at)
    if name == "kill":
        fault.start = time.monotonic()
        assert server.process is not None
        server.process.kill()  # SIGKILL: no goodbye to the clients
        server.process.wait(5)
        server.stop()  # the process is gone: this only forgets it and removes its directory
        time.sleep(OUTAGE)
        server.start()  # same port; answers PING when this returns
        fault.back = time.monotonic()
    elif name == "pause":
        fault.start = time.monotonic()
        server.pause()
        time.sleep(OUTAGE)
        server.resume()
        fault.back = time.monotonic()
    elif name == "reset":
        admin = redis.Redis.from_url(url, socket_timeout=5)
        killed = 0
        fault.start = time.monotonic()
        for _ in range(3):  # three rounds, 0.5 s apart, to hit connections mid-request
            killed += admin.client_kill_filter(_type="normal", skipme=True)
            time.sleep(0.5)
        fault.back = time.monotonic()
        fault.detail = f"{killed} connections killed"
        admin.close()


# -- one phase ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def drive(port: int, args, mode: str, fault_name: str | None, fault: Fault, stats: Stats) -> tuple[list[Client], float]:
    start = time.monotonic()
    deadline = start + args.seconds
    per_client = max(1, args.max_requests // args.clients)
    clients = [Client(i, port, deadline, per_client, stats, fault_name, fault, mode,
                      args.http_timeout) for i in range(args.clients)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(args.seconds + args.http_timeout + 30)
        if c.is_alive():
            stats.violate(f"client {c.index} still running after the deadline (a hang)")
    elapsed = time.monotonic() - start
    for c in clients:
        stats.recs.extend(c.recs)
    return clients, elapsed


def final_check(clients: list[Client], url: str, namespace: str, fault_name: str | None,
                fault: Fault, stats: Stats) -> dict:
    """Read every session back from Redis and compare with what the clients were told."""
    manager = RedisSessions(redis.Redis.from_url(url, socket_timeout=5), namespace=namespace, wipe=0)
    checked = lost_writes = lost_sessions = zombies = orphans = 0
    try:
        for c in clients:
            stored = {s["token"]: s for s in manager.soid(APP_NAME, c.devices[0].user)}
            held = set()
            for d in c.devices:
                if d.token is None:
                    continue
                held.add(d.token)
                session = stored.get(d.token)
                restarted_away = (fault_name == "kill" and fault.start is not None
                                  and d.login_start < (fault.back or 0))
                if d.killed_elsewhere:
                    if session is not None:
                        zombies += 1
                        stats.violate(f"client {c.index}: session survived logout-all (zombie)")
                    continue
                if session is None:
                    if not (d.uncertain or restarted_away):
                        lost_sessions += 1
                        stats.violate(f"client {c.index}: live session {d.token[:8]}... missing "
                                      f"(acked n={d.acked})")
                    continue
                if restarted_away:
                    stats.violate(f"client {c.index}: a pre-restart session exists after restart")
                    continue
                n = session.get("d", {}).get("n", 0)
                checked += 1
                if n < d.acked:
                    lost_writes += 1
                    stats.violate(f"client {c.index}: stored n={n} < acknowledged {d.acked}")
                elif n > d.attempted:
                    stats.violate(f"client {c.index}: stored n={n} > attempted {d.attempted}")
            for token in stored:
                if token in stats.dead_tokens:
                    zombies += 1
                    stats.violate(f"client {c.index}: logged-out session {token[:8]}... exists (zombie)")
                elif token not in held:
                    orphans += 1
    finally:
        manager.close()
    if orphans > stats.failed_logins:
        stats.violate(f"{orphans} sessions no device holds, {stats.failed_logins} logins failed")
    return {"checked": checked, "lost_writes": lost_writes, "lost_sessions": lost_sessions,
            "zombies": zombies, "orphans": orphans}


def summarize(recs: list[Rec], elapsed: float) -> dict:
    lat = [r.end - r.start for r in recs]
    return {
        "requests": len(recs),
        "rps": len(recs) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": max(lat, default=0) * 1000,
        "5xx": sum(1 for r in recs if r.status >= 500),
        "500": sum(1 for r in recs if r.status == 500 or r.status == 0),
        "by_op": {op: sum(1 for r in recs if r.op == op) for op in sorted({r.op for r in recs})},
    }


def cleanup(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="in total, all clients")
    parser.add_argument("--fault", choices=["kill", "pause", "reset"])
    parser.add_argument("--fault-at", type=float, default=None, help="seconds into the run")
    parser.add_argument("--socket-timeout", type=float, default=0.5)
    parser.add_argument("--http-timeout", type=float, default=15.0)
    parser.add_argument("--on-backend-error", choices=["anonymous", "raise"], default="anonymous")
    parser.add_argument("--no-bare", action="store_true", help="skip the run without middleware")
    args = parser.parse_args(argv)

    server = None
    url = os.environ.get("REDIS_URL")
    if args.fault and url:
        parser.error("faults need the private server: unset REDIS_URL")
    if not url:
        server = RedisServer().start()
        url = server.url
    namespace = "rsload" + secrets.token_hex(3)
    stats = Stats()
    fault = Fault()
    failures: list[str] = []
    gunicorn = None
    try:
        gunicorn, port = start_gunicorn("session", url, namespace, args.socket_timeout,
                                        args.on_backend_error)
        fault_thread = None
        if args.fault:
            at = args.fault_at if args.fault_at is not None else args.seconds / 3
            fault_thread = threading.Thread(target=run_fault, args=(args.fault, server, url, fault, at),
                                            daemon=True)
            fault_thread.start()
        clients, elapsed = drive(port, args, "session", args.fault, fault, stats)
        if fault_thread is not None:
            fault_thread.join(30)
        stop_process(gunicorn)
        gunicorn = None
        check = final_check(clients, url, namespace, args.fault, fault, stats)
        s = summarize(stats.recs, elapsed)
        print(f"with middleware : {s['requests']} requests in {elapsed:.1f}s = {s['rps']:.0f} req/s, "
              f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.0f} ms; "
              f"ops {s['by_op']}")
        print(f"writes acknowledged {stats.acked_writes}; sessions read back {check['checked']}: "
              f"lost writes {check['lost_writes']}, lost sessions {check['lost_sessions']}, "
              f"zombies {check['zombies']}, orphans {check['orphans']} "
              f"(logins failed mid-fault {stats.failed_logins}); tokens issued {len(stats.all_tokens)}, "
              f"distinct {len(set(stats.all_tokens))}")
        if len(set(stats.all_tokens)) != len(stats.all_tokens):
            failures.append("a token was issued twice")
        if s["500"]:
            failures.append(f"{s['500']} answers 500 or connection errors")
        degraded = [r for r in stats.recs if r.degraded]
        row_fault = ""
        if not args.fault:
            if s["5xx"] or degraded:
                failures.append(f"{s['5xx']} 5xx, {len(degraded)} degraded answers without a fault")
        else:
            assert fault.start is not None and fault.back is not None, "the fault did not run"
            window_end = fault.back + RECOVERY_LIMIT
            outside = [r for r in degraded if r.end < fault.start or r.start > window_end]
            during = [r for r in stats.recs if r.end >= fault.start and r.start <= fault.back]
            max_during = max((r.end - r.start for r in during), default=0.0)
            bound = ROUND_TRIPS * args.socket_timeout + MARGIN
            writes_after = sorted(r.end for r in stats.recs
                                  if r.op in ("login", "write") and r.status == 200 and r.end > fault.back)
            recovery = (writes_after[0] - fault.back) if writes_after else float("inf")
            kinds: dict[str, int] = {}
            for r in degraded:
                key = f"{r.op}:{r.status}"
                kinds[key] = kinds.get(key, 0) + 1
            print(f"fault {args.fault}: outage {fault.back - fault.start:.2f}s {fault.detail}; "
                  f"{len(during)} requests overlapped it, max latency {max_during * 1000:.0f} ms "
                  f"(bound {bound * 1000:.0f} ms = {ROUND_TRIPS} x socket_timeout "
                  f"{args.socket_timeout}s + {MARGIN}s); degraded answers {len(degraded)} {kinds} "
                  f"({len(outside)} outside the window); first session write "
                  f"{recovery * 1000:.0f} ms after the server returned")
            if outside:
                failures.append(f"{len(outside)} degraded answers outside the outage window "
                                f"(+{RECOVERY_LIMIT}s), e.g. {outside[0]}")
            if max_during > bound:
                failures.append(f"a request overlapping the outage took {max_during:.2f}s > {bound:.2f}s")
            if recovery > RECOVERY_LIMIT:
                failures.append(f"first session write {recovery:.2f}s after the return > {RECOVERY_LIMIT}s")
            row_fault = (f"outage {fault.back - fault.start:.1f}s: max latency {max_during * 1000:.0f} ms "
                         f"(timeout {args.socket_timeout * 1000:.0f} ms), recovered in "
                         f"{recovery * 1000:.0f} ms, {len(degraded)} anonymous/503 answers")
        failures.extend(stats.violations[:20])
        if len(stats.violations) > 20:
            failures.append(f"... {len(stats.violations) - 20} more violations")

        ratio_text = ""
        if not args.fault and not args.no_bare:
            bare_stats = Stats()
            gunicorn, port = start_gunicorn("bare", url, namespace, args.socket_timeout, "anonymous")
            _, bare_elapsed = drive(port, args, "bare", None, Fault(), bare_stats)
            stop_process(gunicorn)
            gunicorn = None
            b = summarize(bare_stats.recs, bare_elapsed)
            print(f"without         : {b['requests']} requests in {bare_elapsed:.1f}s = {b['rps']:.0f} req/s, "
                  f"p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms")
            ratio = s["rps"] / b["rps"] if b["rps"] else 0.0
            print(f"ratio with/without middleware: {ratio:.2f} of the requests/s, "
                  f"p50 x{s['p50_ms'] / b['p50_ms'] if b['p50_ms'] else 0:.2f}")
            if b["5xx"] or bare_stats.violations:
                failures.append(f"bare app: {b['5xx']} 5xx, {bare_stats.violations[:3]}")
            ratio_text = f"; without middleware {b['rps']:.0f} req/s (ratio {ratio:.2f})"

        verdict = "PASS" if not failures else "FAIL"
        for f in failures:
            print("  FAIL:", f)
        name = f"fault: {args.fault}" if args.fault else "load"
        print(f"| {name} | {args.clients} clients, {elapsed:.0f} s, gunicorn 2 gthread workers | "
              f"{s['requests']} req, {s['rps']:.0f} req/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms"
              f"{ratio_text} | {row_fault + '; ' if row_fault else ''}{s['500']} 500s, "
              f"{stats.acked_writes} writes acked, {check['lost_writes']} lost, "
              f"{check['lost_sessions']} sessions lost, {check['zombies']} zombies | {verdict} |")
        return 0 if not failures else 1
    finally:
        if gunicorn is not None:
            stop_process(gunicorn)
        try:
            if server is None:
                cleanup(url, namespace)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
