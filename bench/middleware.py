"""µs per request of SessionMiddleware vs Flask-Session's Redis interface, in one run, one Redis.

    python bench/middleware.py [--quick]

Uses REDIS_URL, else starts a private server (bench/_common.py). Each case calls the WSGI app
in-process with a prepared environ, many times; the figure is the median of the repeats' means.
Overheads are over the matching bare app (a bare WSGI callable; a bare Flask app for Flask-Session).
"""

from __future__ import annotations

import sys

from _common import measure, raw_caller, redis_url

APP = "benchapp"
GOAL_NO_COOKIE_US = 3.0
GOAL_READ_RTT_FACTOR = 2.0
GOAL_VS_FLASK_SESSION = 4.0


def start_response(status, headers, exc_info=None):
    return None


def caller(app, environ):
    """A zero-argument function making one request (and consuming and closing the body)."""

    def call():
        result = app(environ, start_response)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

    return call


def base_environ(cookie: str | None = None) -> dict:
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost", "wsgi.url_scheme": "http",
        "wsgi.input": None, "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    import io

    environ["wsgi.input"] = io.BytesIO(b"")
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    return environ


def raw_round_trip(url: str, iterations: int, repeats: int, packed: bytes) -> float:
    """One command over a raw socket parsed by hiredis.Reader: the floor of one round trip."""
    with raw_caller(url, packed) as call:
        return measure(call, iterations, repeats)


def bench(url: str, quick: bool = False) -> dict[str, float]:
    import flask
    import redis
    from flask_session import Session as FlaskSession

    from redis_sessions import RedisSessions, core
    from redis_sessions.wsgi import SessionMiddleware, get_session

    n_fast, n_redis, repeats = (2000, 300, 5) if quick else (20000, 2000, 7)
    counter = iter(range(10**12))
    out: dict[str, float] = {}

    # -- bare WSGI and our middleware --
    def bare(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    def reading(environ, start_response):
        get_session(environ).get("n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    def writing(environ, start_response):
        get_session(environ)["n"] = next(counter)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    manager = RedisSessions(url, namespace="rsbench", wipe=0)
    token = manager.create(APP, "bench-user", "127.0.0.1", d={"n": 0})
    cookie = f"{APP}={token}"
    # the raw round trips: PING, and the very FCALL of the get function that manager.get sends
    # (manager internals, used only to build the same command)
    from redis_sessions import scripts

    manager.get(APP, token)  # loads the library
    ctx = manager._app(APP)
    get_call = ctx.call(scripts.GET, ctx.token_keys(token), (token, "1", manager.resolution))
    get_script = get_call.script.pack(get_call.keys, get_call.args)
    out["raw round trip (PING)"] = raw_round_trip(url, n_redis, repeats, b"*1\r\n$4\r\nPING\r\n")
    out["raw round trip (get script)"] = raw_round_trip(url, n_redis, repeats, get_script)
    out["manager.get() alone"] = measure(lambda: manager.get(APP, token), n_redis, repeats)
    out["bare WSGI app"] = measure(caller(bare, base_environ()), n_fast, repeats)
    out["middleware, no cookie"] = measure(
        caller(SessionMiddleware(reading, app_name=APP, sessions=manager), base_environ()),
        n_fast, repeats)
    out["middleware, read"] = measure(
        caller(SessionMiddleware(reading, app_name=APP, sessions=manager), base_environ(cookie)),
        n_redis, repeats)
    out["middleware, write"] = measure(
        caller(SessionMiddleware(writing, app_name=APP, sessions=manager), base_environ(cookie)),
        n_redis, repeats)

    # -- Flask, bare and with Flask-Session's Redis interface --
    bare_flask = flask.Flask("bare")

    @bare_flask.route("/")
    def bare_view():
        return "hello"

    client = redis.Redis.from_url(url)
    fs_app = flask.Flask("flasksession")
    fs_app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_KEY_PREFIX="rsbench:")
    FlaskSession(fs_app)
    mode = {"write": False}

    @fs_app.route("/")
    def fs_view():
        if mode["write"]:
            flask.session["n"] = next(counter)
        else:
            flask.session.get("n")
        return "hello"

    mode["write"] = True
    fs_cookie = fs_app.test_client().get("/").headers["Set-Cookie"].split(";")[0]
    mode["write"] = False
    out["bare Flask app"] = measure(caller(bare_flask, base_environ()), n_fast // 4, repeats)
    out["Flask-Session, no cookie"] = measure(caller(fs_app, base_environ()), n_fast // 4, repeats)
    out["Flask-Session, read"] = measure(caller(fs_app, base_environ(fs_cookie)), n_redis, repeats)
    mode["write"] = True
    out["Flask-Session, write"] = measure(caller(fs_app, base_environ(fs_cookie)), n_redis, repeats)

    manager.kill(APP, token)
    for key in client.scan_iter(match="rsbench:*"):
        client.delete(key)
    manager.close()
    client.close()
    out["_core"] = core.IMPLEMENTATION  # type: ignore[assignment]
    return out


def report(r: dict[str, float]) -> list[str]:
    """Print the figures, overheads, ratios and goals; returns the goals missed."""
    print(f"core: {r['_core']}; µs per request (median of repeats)")
    for name, value in r.items():
        if not name.startswith("_"):
            print(f"  {name:<28}{value:9.2f}")
    rtt = r["raw round trip (get script)"]
    missed = []
    print("overheads over the bare app (µs) and Flask-Session / ours:")
    for case in ("no cookie", "read", "write"):
        ours = r[f"middleware, {case}"] - r["bare WSGI app"]
        theirs = r[f"Flask-Session, {case}"] - r["bare Flask app"]
        ratio = theirs / ours if ours > 0 else float("inf")
        print(f"  {case:<10} ours {ours:8.2f}   Flask-Session {theirs:8.2f}   ratio {ratio:6.1f}x")
        if case != "no cookie" and ratio < GOAL_VS_FLASK_SESSION:
            missed.append(f"{case}: only {ratio:.1f}x less overhead than Flask-Session")
        if case == "no cookie" and ours > GOAL_NO_COOKIE_US:
            missed.append(f"no-cookie overhead {ours:.2f} µs > {GOAL_NO_COOKIE_US} µs")
        if case == "read":
            print(f"  read overhead = {ours / rtt:.2f}x one raw round trip of the get script "
                  f"({rtt:.1f} µs); manager.get() alone is "
                  f"{r['manager.get() alone'] / rtt:.2f}x; the web layer adds "
                  f"{ours - r['manager.get() alone']:.1f} µs")
            if ours > GOAL_READ_RTT_FACTOR * rtt:
                missed.append(f"read overhead {ours / rtt:.2f}x the raw round trip")
    print("goals: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return missed


def main() -> None:
    with redis_url() as url:
        report(bench(url, "--quick" in sys.argv))


if __name__ == "__main__":
    main()
