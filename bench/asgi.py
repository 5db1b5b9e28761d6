"""Requests per second under uvicorn: bare Starlette vs starsessions vs redis-sessions' ASGI
middleware; and the async manager's get() vs a raw asyncio round trip, in the same run.

    python bench/asgi.py [--seconds 5] [--rounds 3] [--connections 8] [--gets 2000]
                         [--redis-url URL] [--json FILE]

Starts one uvicorn (one worker, a free loopback port) per stack, gets a session cookie from each
(a logged-in user's), then drives ``/read`` (reads one value) and ``/write`` (sets one value)
with ``wrk -t1 -cN`` and that cookie, interleaved (every round measures every cell once, in a
rotated order); the table shows each cell's median req/s and the ratios vs bare Starlette
("Starlette + 1 raw Redis GET" does one round trip per request and nothing else: the ceiling of
any session kept in Redis on this machine). Every
response must be a 200 and every redis-sessions read/write must be counted in Redis. Then, on one
asyncio loop in this process: ``await manager.get()`` vs FCALL of the same get function written
to an asyncio stream and read back with hiredis (blocks of ``--gets``, alternating, medians).
Needs wrk (``apt-get install wrk``): exits 2 without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import hiredis
import redis
from _common import HttpServer, command_calls, private_redis, serving
from http_bench import WRK_HINT, WRK_SCRIPT, run_wrk

from redis_sessions import core, scripts
from redis_sessions.keys import Keys

APP = NAMESPACE = "asgibench"
STARSESSIONS_PREFIX = "asgibench:star:"
STACKS = ("starlette", "starlette_roundtrip", "starsessions", "starlette_rs", "starlette_rs_lazy")
RS_STACKS = ("starlette_rs", "starlette_rs_lazy")
ROUTES = ("read", "write")
LABELS = {"starlette": "bare Starlette", "starlette_roundtrip": "Starlette + 1 raw Redis GET",
          "starsessions": "Starlette + starsessions (Redis)",
          "starlette_rs": "Starlette + redis-sessions",
          "starlette_rs_lazy": "Starlette + redis-sessions lazy"}
# --baseline-python: Starlette + redis-sessions again, served by that interpreter (another release
# in another virtualenv), interleaved with the rest: before and after in one run
BASE_STACK = "starlette_rs_base"
LABELS[BASE_STACK] = LABELS["starlette_rs"] + " (baseline)"
# issue 21's goals: redis-sessions' ratio vs bare against its floor's (the same app doing one
# raw GET) and against starsessions'; issue 13's: get() vs a raw FCALL
GOAL_VS_FLOOR = {"read": 0.9, "write": 0.85}
GOAL_VS_STARSESSIONS = 1.25
GOAL_GET_VS_RAW = 1.5


# -- the apps (run by ``--serve STACK``) ----------------------------------------------------------


def _raw_roundtrip(redis_url: str) -> Any:
    """A coroutine function doing one GET per call on one pipelined connection (the async
    wire's pipe, none of the manager): the ceiling of any session kept in Redis."""
    import redis.asyncio

    from redis_sessions.connection import Pipe, exchange

    pool = redis.asyncio.ConnectionPool.from_url(redis_url)
    packed = core.pack_command([b"GET", f"{APP}:floor"])
    pipes: list[Any] = []

    async def call() -> object:
        if not pipes:
            pipes.append(await Pipe.open(pool.make_connection()))
        return (await exchange(pipes[0], packed, 1))[0]

    return call


def create(stack: str, redis_url: str) -> Any:
    """One stack as a Starlette app answering /login, /read and /write with the same body."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    counter = iter(range(1 << 62))
    middleware: list[Middleware] = []
    load: Any = None
    uses_session = stack not in ("starlette", "starlette_roundtrip")
    roundtrip = _raw_roundtrip(redis_url) if stack == "starlette_roundtrip" else None
    if stack == "starsessions":
        import redis.asyncio
        from starsessions import SessionMiddleware, load_session
        from starsessions.stores.redis import RedisStore

        store = RedisStore(connection=redis.asyncio.Redis.from_url(redis_url),
                           prefix=STARSESSIONS_PREFIX)
        middleware.append(Middleware(SessionMiddleware, store=store, cookie_https_only=False,
                                     lifetime=7200, rolling=True))
        load = load_session
    elif stack in RS_STACKS:
        from redis_sessions.aio import AsyncRedisSessions
        from redis_sessions.asgi import SessionMiddleware as RSMiddleware

        manager = AsyncRedisSessions(redis_url, namespace=NAMESPACE, wipe=0)
        middleware.append(Middleware(RSMiddleware, app_name=APP, sessions=manager,
                                     lazy=stack == "starlette_rs_lazy"))
        if stack == "starlette_rs_lazy":  # loaded by the app before reading; writes are blind
            async def load(request: Any) -> None:
                await request.session.load()

    async def login(request: Any) -> PlainTextResponse:
        if stack in RS_STACKS:
            await request.session.upgrade("bench")
        elif load is not None:
            await load(request)
            request.session["user"] = "bench"
        return PlainTextResponse("hello")

    async def read(request: Any) -> PlainTextResponse:
        if uses_session:
            if load is not None:
                await load(request)
            request.session.get("user")
        elif roundtrip is not None:
            await roundtrip()
        return PlainTextResponse("hello")

    async def write(request: Any) -> PlainTextResponse:
        if roundtrip is not None:
            await roundtrip()
        if uses_session:
            if stack == "starsessions":  # (starsessions cannot write before loading)
                await load(request)
            request.session["v"] = next(counter)
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/login", login), Route("/read", read),
                             Route("/write", write)], middleware=middleware)


def serve(stack: str, port: int, redis_url: str) -> None:
    import uvicorn

    uvicorn.run(create(stack, redis_url), host="127.0.0.1", port=port, workers=1,
                log_level="warning", access_log=False, lifespan="off")


# -- the HTTP cells --------------------------------------------------------------------------------


def uvicorn(stack: str, redis_url: str, logdir: str, baseline_python: str | None = None
            ) -> HttpServer:
    """``python bench/asgi.py --serve STACK``: one uvicorn worker serving one stack (the
    baseline's by ``baseline_python``)."""
    python, served = sys.executable, stack
    if stack == BASE_STACK:
        python, served = baseline_python or python, "starlette_rs"
    return HttpServer("uvicorn", stack, [
        python, os.path.abspath(__file__), "--serve", served, "--port", "{port}",
        "--redis-url", redis_url], logdir)


def counters(client: redis.Redis, cookie: str) -> tuple[int, int]:
    """The (loads, writes) Redis saw for a redis-sessions cookie's session: loads by the HMGETs
    run (a read within the activity resolution writes nothing: one HMGET; beyond it the get
    function, which runs one too), writes by the session's w."""
    w = client.hget(Keys(NAMESPACE).session(APP, cookie.split("=", 1)[1]), "w")
    return command_calls(client).get("hmget", 0), int(w)


def http_cells(args: argparse.Namespace, wrk: str, url: str) -> dict[str, Any]:
    stacks = STACKS + ((BASE_STACK,) if args.baseline_python else ())
    rs_stacks = tuple(s for s in stacks if s in RS_STACKS or s == BASE_STACK)
    cells: dict[str, dict[str, list[float]]] = {s: {r: [] for r in ROUTES} for s in stacks}
    problems: list[str] = []
    client = redis.Redis.from_url(url)
    with serving(lambda stack, logdir: uvicorn(stack, url, logdir, args.baseline_python),
                 stacks) as running, \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        cookies = {s: running[s].login() for s in ("starsessions", *rs_stacks)}
        if not all(cookies.values()):
            raise RuntimeError(f"a /login set no cookie: {cookies}")
        # the same header size, ignored
        cookies["starlette"] = cookies["starlette_roundtrip"] = cookies["starlette_rs"]
        for round_no in range(args.rounds):
            order = stacks[round_no % len(stacks):] + stacks[:round_no % len(stacks)]
            routes = ROUTES if round_no % 2 == 0 else ROUTES[::-1]
            for stack in order:
                for route in routes:
                    before = counters(client, cookies[stack]) if stack in rs_stacks else None
                    result = run_wrk(wrk, script.name, f"{running[stack].url}/{route}",
                                     cookies[stack], args.seconds, args.connections)
                    cells[stack][route].append(result["rps"])
                    bad = result["not200"] + result["connect"] + result["read"] + result["timeout"]
                    if bad:
                        problems.append(f"{stack} /{route}: {bad} failed responses")
                    if before is not None:
                        done = counters(client, cookies[stack])[ROUTES.index(route)] \
                            - before[ROUTES.index(route)]
                        if done < result["requests"]:
                            problems.append(f"{stack} /{route}: {done} counted in Redis for "
                                            f"{result['requests']} requests")
                    print(f"  round {round_no + 1} {stack:<17} /{route:<6}"
                          f"{result['rps']:9.0f} req/s", file=sys.stderr)
    if args.redis_url:  # a server we did not start: remove our keys only
        for key in client.scan_iter(match=f"{NAMESPACE}:*", count=1000):
            client.delete(key)
    client.close()
    return {"cells": cells, "problems": problems}


# -- get() vs a raw round trip ----------------------------------------------------------------


async def get_vs_raw(url: str, gets: int, rounds: int) -> dict[str, list[float]]:
    """µs per sequential get: the async manager's, and a raw FCALL over an asyncio stream."""
    from redis_sessions.aio import AsyncRedisSessions

    # activity_resolution=0: every get() runs the function, as the raw call does
    manager = AsyncRedisSessions(url, namespace=NAMESPACE, wipe=0, activity_resolution=0)
    token = await manager.create(APP, "bench-get", "127.0.0.1", 7200, {"user": "bench"})
    ctx = manager._app(APP)
    call = ctx.call(scripts.GET, ctx.token_keys(token), (token, "0", 0))
    packed = call.script.pack(call.keys, call.args)
    pool = manager.client.connection_pool.connection_kwargs
    reader, writer = await asyncio.open_connection(pool.get("host", "127.0.0.1"),
                                                   pool.get("port", 6379))
    if pool.get("password"):
        writer.write(core.pack_command([b"AUTH", pool["password"]]))
    if pool.get("db"):
        writer.write(core.pack_command([b"SELECT", pool["db"]]))
    parser = hiredis.Reader()

    async def raw() -> object:
        writer.write(packed)
        while True:
            reply = parser.gets()
            if reply is not False:
                return reply
            parser.feed(await reader.read(65536))

    for _ in range(int(bool(pool.get("password"))) + int(bool(pool.get("db")))):
        await raw()  # the AUTH/SELECT replies
    assert (await manager.get(APP, token))["d"] == {"user": "bench"}
    assert isinstance(await raw(), bytes)  # (one text: scripts/_lib.lua's reply())
    out: dict[str, list[float]] = {"manager": [], "raw": []}
    for round_no in range(rounds * 2):
        which = ("manager", "raw") if round_no % 2 == 0 else ("raw", "manager")
        for name in which:
            start = time.perf_counter()
            if name == "raw":
                for _ in range(gets):
                    await raw()
            else:
                for _ in range(gets):
                    await manager.get(APP, token)
            out[name].append((time.perf_counter() - start) / gets * 1e6)
    writer.close()
    await manager.kill(APP, token)
    await manager.close()
    return out


# -- report ----------------------------------------------------------------------------------------


def summarize(cells: dict[str, dict[str, list[float]]], gets: dict[str, list[float]]
              ) -> dict[str, Any]:
    stacks = tuple(cells)
    ours = tuple(s for s in stacks if s in RS_STACKS or s == BASE_STACK)
    med = {s: {r: statistics.median(cells[s][r]) for r in ROUTES} for s in stacks}
    ratio = {s: {r: med[s][r] / med["starlette"][r] for r in ROUTES} for s in stacks}
    vs_star = {s: {r: ratio[s][r] / ratio["starsessions"][r] for r in ROUTES} for s in ours}
    vs_floor = {s: {r: ratio[s][r] / ratio["starlette_roundtrip"][r] for r in ROUTES}
                for s in ours}
    get_us = {k: statistics.median(v) for k, v in gets.items()}
    get_ratio = get_us["manager"] / get_us["raw"]
    missed = []
    for r in ROUTES:
        if vs_floor["starlette_rs"][r] < GOAL_VS_FLOOR[r]:
            missed.append(f"/{r}: {vs_floor['starlette_rs'][r]:.2f}x the floor's ratio < "
                          f"{GOAL_VS_FLOOR[r]}x")
        if vs_star["starlette_rs"][r] < GOAL_VS_STARSESSIONS:
            missed.append(f"/{r}: {vs_star['starlette_rs'][r]:.2f}x starsessions' ratio < "
                          f"{GOAL_VS_STARSESSIONS}x")
    if get_ratio > GOAL_GET_VS_RAW:
        missed.append(f"get() {get_ratio:.2f}x the raw round trip > {GOAL_GET_VS_RAW}x")
    per_round = {s: {r: [c / b for c, b in zip(cells[s][r], cells["starlette"][r])]
                     for r in ROUTES} for s in stacks}
    return {"median_rps": med, "ratio_vs_bare": ratio, "rs_vs_starsessions": vs_star,
            "rs_vs_one_round_trip": vs_floor,
            "ratio_vs_bare_per_round": per_round,
            "get_us": get_us, "get_vs_raw": get_ratio, "goals_missed": missed}


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    import uvicorn

    med, ratio = summary["median_rps"], summary["ratio_vs_bare"]
    print(f"uvicorn {uvicorn.__version__} (1 worker), wrk -t1 -c{args.connections} "
          f"-d{args.seconds:g}s, {args.rounds} interleaved rounds (medians); "
          f"core: {core.IMPLEMENTATION}")
    print(f"| {'stack':<38}| /read req/s | vs bare | /write req/s | vs bare |")
    print(f"|{'-' * 39}|------------:|--------:|-------------:|--------:|")
    for s in med:
        print(f"| {LABELS[s]:<38}| {med[s]['read']:11.0f} | {ratio[s]['read']:6.2f}x "
              f"| {med[s]['write']:12.0f} | {ratio[s]['write']:6.2f}x |")
    for s, vs in summary["rs_vs_starsessions"].items():
        print(f"{LABELS[s]}: its ratio / starsessions' ratio: /read {vs['read']:.2f}x, "
              f"/write {vs['write']:.2f}x")
    for s, vs in summary["rs_vs_one_round_trip"].items():
        print(f"{LABELS[s]}: its ratio / 1 raw Redis GET's ratio (the floor of any session "
              f"kept in Redis): /read {vs['read']:.2f}x, /write {vs['write']:.2f}x")
    spread = summary["ratio_vs_bare_per_round"]
    print("per-round ratios vs bare: " + "; ".join(
        f"{s} /{r} {min(spread[s][r]):.2f}-{max(spread[s][r]):.2f}"
        for s in list(med)[1:] for r in ROUTES))
    g = summary["get_us"]
    print(f"sequential get on one asyncio loop: AsyncRedisSessions.get {g['manager']:.1f} µs, "
          f"raw FCALL over an asyncio stream + hiredis {g['raw']:.1f} µs: "
          f"{summary['get_vs_raw']:.2f}x")
    missed = summary["goals_missed"]
    print(f"goals (redis-sessions >= {GOAL_VS_FLOOR['read']}x the floor's ratio on /read, >= "
          f"{GOAL_VS_FLOOR['write']}x on /write, >= {GOAL_VS_STARSESSIONS}x starsessions' ratio "
          f"on both; get <= {GOAL_GET_VS_RAW}x raw): "
          + ("all met" if not missed else "MISSED: " + "; ".join(missed)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c (default 8)")
    parser.add_argument("--gets", type=int, default=2000, help="gets per timed block")
    parser.add_argument("--redis-url", help="use this Redis (default: a private server)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-python", metavar="PATH",
                        help="also run Starlette + redis-sessions with this interpreter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.redis_url)
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_HINT, file=sys.stderr)
        return 2
    with private_redis(args.redis_url) as url:
        result = http_cells(args, wrk, url)
        gets = asyncio.run(get_vs_raw(url, args.gets, args.rounds))
    summary = summarize(result["cells"], gets)
    report(summary, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "core": core.IMPLEMENTATION, **summary,
                       "runs": result["cells"], "gets": gets, "problems": result["problems"]},
                      f, indent=1)
    if result["problems"]:
        print("CHECKS FAILED: " + "; ".join(result["problems"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
