"""The demo WSGI app: log in as a user id, see every session of that id, log devices out.

Every state change is a POST form carrying the session's CSRF token; pages are plain string
templates with every value passed through ``html.escape``. Other devices' sessions are named by a
digest of their token (``handle``), never by the token itself, and only sessions of the logged-in
user id can be killed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from html import escape
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlencode

from ..errors import ValidationError
from ..manager import RedisSessions
from ..wsgi import SessionMiddleware, get_session

__all__ = ["DemoApp", "make_app", "handle", "describe_browser"]

MAX_FORM = 4096  # bytes of a POST body the demo reads
MAX_UA = 200  # characters of the User-Agent kept in the session
ACTIVITY_WINDOW = 600

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redis-sessions demo</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 54rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }
.this { font-weight: 600; color: #075; }
.note { background: #eef6ee; padding: .5rem .8rem; }
.error { background: #fbeaea; padding: .5rem .8rem; }
form.inline { display: inline; }
small { color: #666; }
</style></head>
<body><main data-user="$user">
<h1>redis-sessions demo</h1>
$message
$content
<p><small>app <code>$app</code> &middot; cookie <code>$app</code> &middot;
sessions in Redis namespace <code>$namespace</code></small></p>
</main></body></html>
""")

_LOGIN = Template("""<p>Log in with any user id. Log in again from another browser (or a private
window) to see several sessions of the same id.</p>
<form method="post" action="/login">
<label>User id <input name="user" value="$user" maxlength="128" required autofocus></label>
<button type="submit">Log in</button>
</form>""")

_HOME = Template("""<p>Signed in as <b>$user</b>.
This session has $visits page view$plural (a counter in the session data, written on every view).</p>
<p>$active user$active_plural active in the last 10 minutes.</p>
<h2>Your sessions</h2>
<table>
<thead><tr><th>Browser</th><th>IP</th><th>Signed in</th><th>Last active</th><th>Views</th><th></th></tr></thead>
<tbody>
$rows
</tbody></table>
<form class="inline" method="post" action="/logout">$csrf<button type="submit">Log out</button></form>
<form class="inline" method="post" action="/logout-all">$csrf<button type="submit">Log out all devices</button></form>
""")

_ROW = Template("""<tr data-session="$handle" data-this="$this">
<td>$browser$marker</td><td>$ip</td><td>$signed_in</td><td>$idle</td><td>$visits</td>
<td><form method="post" action="/kill">$csrf<input type="hidden" name="session" value="$handle">
<button type="submit">Log out</button></form></td></tr>""")

_CSRF = Template('<input type="hidden" name="csrf" value="$token">')

_MESSAGES = {
    "in": "Logged in.",
    "out": "Logged out.",
    "killed": "Logged out the other device.",
    "all": "Logged out on all devices.",
    "expired": "Your session has ended: log in again.",
}

_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
]


def handle(token: str) -> str:
    """How the page names a session: a digest of its token (the token stays a secret)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def describe_browser(user_agent: str) -> str:
    """"Firefox on Linux" for a common User-Agent; the start of it otherwise."""
    if not user_agent:
        return "unknown"
    name = next((label for marker, label in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
        ("Safari/", "Safari"), ("curl/", "curl"), ("Python-urllib/", "Python urllib"),
    ) if marker in user_agent), None)
    system = next((label for marker, label in (
        ("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iOS"),
        ("Mac OS X", "macOS"), ("Linux", "Linux"),
    ) if marker in user_agent), None)
    if name and system:
        return f"{name} on {system}"
    return name or (user_agent if len(user_agent) <= 60 else user_agent[:57] + "...")


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


def _created(token: str) -> float | None:
    """When a session was created: Node's token ends with "Z" and the time in base 36 (ms)."""
    try:
        return int(token[56:], 36) / 1000
    except ValueError:
        return None


class DemoApp:
    """The inner WSGI app; wrap it in ``SessionMiddleware`` (``make_app`` does)."""

    def __init__(self, app_name: str, namespace: str) -> None:
        self.app_name = app_name
        self.namespace = namespace

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        session = get_session(environ)
        if session is None:  # the middleware always opens one for this app
            raise RuntimeError("the demo app runs behind SessionMiddleware")
        routes = {
            "/login": self.login,
            "/logout": self.logout,
            "/logout-all": self.logout_all,
            "/kill": self.kill,
        }
        if path == "/":
            if method not in ("GET", "HEAD"):
                return self.respond(start_response, "405 Method Not Allowed", "Use GET.")
            return self.home(environ, start_response, session)
        action = routes.get(path)
        if action is None:
            return self.respond(start_response, "404 Not Found", "Not found.")
        if method != "POST":
            return self.respond(start_response, "405 Method Not Allowed", "Use POST.")
        form = _read_form(environ)
        if path != "/login":
            if session.user_id is None:
                return self.redirect(start_response, "expired")
            expected = session.get("csrf")
            if not isinstance(expected, str) or not hmac.compare_digest(
                expected.encode(), form.get("csrf", "").encode()
            ):
                return self.respond(start_response, "403 Forbidden", "Bad or missing form token.")
        return action(environ, start_response, session, form)

    # -- pages ---------------------------------------------------------------------------------

    def page(self, session: Any, content: str, message: str = "", error: bool = False) -> bytes:
        note = f'<p class="{"error" if error else "note"}">{escape(message)}</p>' if message else ""
        return _PAGE.substitute(
            user=escape(session.user_id or "") if session is not None else "",
            message=note, content=content, app=escape(self.app_name),
            namespace=escape(self.namespace),
        ).encode()

    def respond(self, start_response: Callable[..., Any], status: str, text: str,
                session: Any = None, content: str = "") -> list[bytes]:
        body = self.page(session, content, text, error=not status.startswith("2"))
        start_response(status, [*_HEADERS, ("Content-Length", str(len(body)))])
        return [body]

    def redirect(self, start_response: Callable[..., Any], message: str) -> list[bytes]:
        start_response("303 See Other", [("Location", "/?" + urlencode({"m": message})),
                                         ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    def home(self, environ: dict[str, Any], start_response: Callable[..., Any], session: Any):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        message = _MESSAGES.get(query.get("m", [""])[0], "")
        if session.user_id is None:
            body = self.page(session, _LOGIN.substitute(user=""), message)
        else:
            session["visits"] = int(session.get("visits", 0)) + 1  # one write per page view
            body = self.page(session, self.sessions_table(session), message)
        start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(body)))])
        return [body]

    def sessions_table(self, session: Any) -> str:
        csrf = _CSRF.substitute(token=escape(session.get("csrf", "")))
        now = time.time()
        rows = []
        mine = session.id
        for s in sorted(session.soid(), key=lambda s: (s["token"] != mine, s["idle"])):
            data = s.get("d", {})
            this = s["token"] == mine
            created = _created(s["token"])
            rows.append(_ROW.substitute(
                handle=handle(s["token"]), this="1" if this else "0",
                browser=escape(describe_browser(str(data.get("ua", "")))),
                marker=' <span class="this">(this device)</span>' if this else "",
                ip=escape(s["ip"]), idle="now" if this else escape(ago(s["idle"])),
                signed_in=escape(ago(now - created)) if created else "",
                visits=escape(str(session["visits"] if this else data.get("visits", 0))),
                csrf=csrf,
            ))
        active = session.activity(ACTIVITY_WINDOW)
        return _HOME.substitute(
            user=escape(session.user_id), visits=session["visits"],
            plural="" if session["visits"] == 1 else "s",
            active=active, active_plural="" if active == 1 else "s",
            rows="\n".join(rows), csrf=csrf,
        )

    # -- actions (POST) ------------------------------------------------------------------------

    def login(self, environ, start_response, session, form):
        user = form.get("user", "").strip()
        try:
            session.upgrade(user)
        except ValidationError as exc:
            return self.respond(start_response, "400 Bad Request", f"That user id won't do: "
                                f"{exc.message}.", session, _LOGIN.substitute(user=escape(user)))
        session["ua"] = environ.get("HTTP_USER_AGENT", "")[:MAX_UA]
        session["visits"] = 0
        session["csrf"] = secrets.token_urlsafe(18)
        return self.redirect(start_response, "in")

    def logout(self, environ, start_response, session, form):
        session.destroy()
        return self.redirect(start_response, "out")

    def logout_all(self, environ, start_response, session, form):
        session.destroyall()
        return self.redirect(start_response, "all")

    def kill(self, environ, start_response, session, form):
        wanted = form.get("session", "")
        # only the logged-in user's own sessions can be found, so only those can be killed
        token = next((s["token"] for s in session.soid() if handle(s["token"]) == wanted), None)
        if token is None:
            return self.respond(start_response, "404 Not Found", "No such session of yours.")
        if token == session.id:
            session.destroy()
            return self.redirect(start_response, "out")
        session.manager.kill(session.app, token)
        return self.redirect(start_response, "killed")


def _read_form(environ: dict[str, Any]) -> dict[str, str]:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_FORM)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def make_app(sessions: RedisSessions, app_name: str = "demo") -> SessionMiddleware:
    """The demo app inside ``SessionMiddleware``, with its sessions in ``sessions``."""
    return SessionMiddleware(DemoApp(app_name, sessions.namespace), app_name=app_name,
                             sessions=sessions)
