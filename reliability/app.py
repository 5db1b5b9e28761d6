"""The small WSGI app the load and fault runs drive, with and without the session middleware.

Endpoints (all answer JSON; the two variants have the same paths and the same shape):

    POST /login?user=U    upgrade() to user U (a new server-made token in Set-Cookie)
    GET  /read            {"anon": true} or {"n": <the session's counter>}
    POST /write?n=N       session["n"] = N, saved with save() before answering, so a 200 is an
                          honest acknowledgement (the implicit save at start_response can only
                          log a failure in on_backend_error="anonymous" mode, never report it)
    POST /logout          destroy()           {"killed": k}
    POST /logout-all      destroyall()        {"killed": k}

A BackendError the app sees (Redis down while creating, saving or killing) is answered 503; an
anonymous session where one is needed is answered 401. Anything else escaping is a bug and the
server turns it into a 500, which the load run counts as a failure.

Configuration comes from the environment, so gunicorn can load ``reliability.app:application``:
RS_LOAD_MODE (``session`` | ``bare``), REDIS_URL, RS_LOAD_NAMESPACE, RS_SOCKET_TIMEOUT (seconds),
RS_ON_BACKEND_ERROR (``anonymous`` | ``raise``).
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import parse_qs

APP_NAME = "loadtest"
JSON = [("Content-Type", "application/json")]


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [*JSON, ("Content-Length", str(len(data)))])
    return [data]


def _query(environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def session_app():
    """The middleware over a RedisSessions whose client has a short socket timeout."""
    import redis

    from redis_sessions import BackendError, RedisSessions, SessionMiddleware, get_session

    timeout = float(os.environ.get("RS_SOCKET_TIMEOUT", "0.5"))
    client = redis.Redis.from_url(
        os.environ["REDIS_URL"], socket_timeout=timeout, socket_connect_timeout=timeout
    )
    manager = RedisSessions(client, namespace=os.environ.get("RS_LOAD_NAMESPACE", "rsload"))
    mode = os.environ.get("RS_ON_BACKEND_ERROR", "anonymous")

    def routes(environ, start_response):
        path = environ.get("PATH_INFO", "")
        session = get_session(environ)
        try:
            if path == "/login":
                session.upgrade(_query(environ)["user"])
                return _reply(start_response, "200 OK", {"ok": True})
            if path == "/read":
                if session.id is None:
                    return _reply(start_response, "200 OK", {"anon": True})
                return _reply(start_response, "200 OK", {"n": session.get("n", 0)})
            if path == "/write":
                if session.id is None:
                    return _reply(start_response, "401 Unauthorized", {"anon": True})
                session["n"] = int(_query(environ)["n"])
                session.save()
                if session.id is None:  # the session was gone when the write arrived
                    return _reply(start_response, "401 Unauthorized", {"gone": True})
                return _reply(start_response, "200 OK", {"n": session["n"]})
            if path == "/logout":
                return _reply(start_response, "200 OK", {"killed": session.destroy()})
            if path == "/logout-all":
                return _reply(start_response, "200 OK", {"killed": session.destroyall()})
            return _reply(start_response, "404 Not Found", {})
        except BackendError as exc:
            return _reply(start_response, "503 Service Unavailable", {"error": str(exc)[:200]})

    app = SessionMiddleware(routes, app_name=APP_NAME, sessions=manager, on_backend_error=mode)
    if mode == "anonymous":
        return app

    def raising(environ, start_response):  # "raise" mode: the outer error page of the site
        try:
            return app(environ, start_response)
        except BackendError as exc:
            return _reply(start_response, "503 Service Unavailable", {"error": str(exc)[:200]})

    return raising


def bare_app():
    """The same endpoints without sessions or Redis: the baseline of the ratio."""
    lock = threading.Lock()
    counters: dict[str, int] = {}

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        query = _query(environ)
        who = environ.get("HTTP_COOKIE", "")
        if path == "/login":
            start_response("200 OK", [*JSON, ("Content-Length", "12"),
                                      ("Set-Cookie", f"{APP_NAME}={query['user']}; Path=/; HttpOnly")])
            return [b'{"ok": true}']
        if path == "/read":
            return _reply(start_response, "200 OK", {"n": counters.get(who, 0)})
        if path == "/write":
            with lock:
                counters[who] = int(query["n"])
            return _reply(start_response, "200 OK", {"n": counters[who]})
        if path in ("/logout", "/logout-all"):
            start_response("200 OK", [*JSON, ("Content-Length", "13"), ("Set-Cookie",
                           f"{APP_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/")])
            return [b'{"killed": 1}']
        return _reply(start_response, "404 Not Found", {})

    return app


def make_app():
    return bare_app() if os.environ.get("RS_LOAD_MODE") == "bare" else session_app()


application = make_app() if os.environ.get("RS_LOAD_MODE") else None
