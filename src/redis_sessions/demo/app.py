"""The demo WSGI app: log in as a user id, see every session of that id, log devices out.

Every state change is a POST form carrying the session's CSRF token; pages are plain string
templates with every value passed through ``html.escape``. Other devices' sessions are named by a
digest of their token (``handle``), never by the token itself, and only sessions of the logged-in
user id can be killed. "Logged in" means ``session.user_id is not None`` (an anonymous visitor may
have a stored session too). The note after an action ("Logged out.") travels in a one-shot cookie,
so a reload or an old URL never shows it again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable
from html import escape
from string import Template
from typing import Any
from urllib.parse import parse_qs

from ..errors import ValidationError
from ..manager import RedisSessions
from ..wsgi import SessionMiddleware, get_session

__all__ = ["DemoApp", "make_app", "handle", "describe_browser", "has_visible", "session_times"]

MAX_FORM = 4096  # bytes of a POST body the demo reads
MAX_UA = 200  # characters of the User-Agent kept in the session
ACTIVITY_WINDOW = 600
FLASH_MAX_AGE = 60  # seconds the one-shot note of an action waits for the page that shows it
NARROW = "40rem"  # below this width the sessions table stacks each session's cells

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redis-sessions demo</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 54rem; margin: 2rem auto; padding: 0 1rem; }
main { overflow-wrap: break-word; }
.sessions { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }
td.wrap { overflow-wrap: anywhere; }
th, td.nowrap { white-space: nowrap; }
@media (max-width: $narrow) {
  table, thead, tbody, tr, th, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tr { border-bottom: 1px solid #ddd; padding: .5rem 0; }
  td { border: 0; padding: .1rem 0; }
  td[data-label]::before { content: attr(data-label) ": "; color: #666; }
}
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
$back
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
<div class="sessions"><table>
<thead><tr><th>Browser</th><th>IP</th><th>Signed in</th><th>Last active</th><th>Views</th><th></th></tr></thead>
<tbody>
$rows
</tbody></table></div>
<form class="inline" method="post" action="/logout">$csrf<button type="submit">Log out</button></form>
<form class="inline" method="post" action="/logout-all">$csrf<button type="submit">Log out all devices</button></form>
""")

_ROW = Template("""<tr data-session="$handle" data-this="$this">
<td class="wrap" data-label="Browser">$browser$marker</td>
<td data-label="IP">$ip</td>
<td data-label="Signed in">$signed_in</td><td data-label="Last active">$idle</td>
<td data-label="Views">$visits</td>
<td class="nowrap"><form method="post" action="/kill">$csrf
<input type="hidden" name="session" value="$handle">
<button type="submit">Log out</button></form></td></tr>""")

_CSRF = Template('<input type="hidden" name="csrf" value="$token">')

# the note of each action, and whether it belongs on the page of a logged-in visitor: a note
# that does not fit the state the page shows (logged out elsewhere in between) is dropped
_MESSAGES = {
    "in": ("Logged in.", True),
    "killed": ("Logged out the other device.", True),
    "out": ("Logged out.", False),
    "all": ("Logged out on all devices.", False),
    "expired": ("Your session has ended: log in again.", False),
}

_BACK = '<p><a href="/">Back to the demo</a></p>'

# letters that render as nothing (Hangul fillers, the braille blank) and marks that draw
# nothing on their own: an id made only of these (or of Cf/Z*/C* characters) looks empty
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")

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


def session_times(token: str, idle: int, now: float) -> tuple[int | None, int]:
    """(seconds since sign-in or None, seconds since last activity), both as of ``now``.

    The token's time comes from the clock of the process that made it (in ms), ``idle`` from
    Redis's clock (whole seconds): read apart they can disagree by a second or more, so the
    sign-in is never shown after the last activity.
    """
    idle = max(0, int(idle))
    created = _created(token)
    if created is None:
        return None, idle
    return max(int(now - created), idle), idle


def has_visible(user_id: str) -> bool:
    """Whether the id shows something: a letter, digit, punctuation or symbol that is drawn."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK for c in user_id)


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
                return self.respond(start_response, "405 Method Not Allowed", "Use GET.",
                                    headers=[("Allow", "GET, HEAD")])
            return self.home(environ, start_response, session)
        action = routes.get(path)
        if action is None:
            return self.respond(start_response, "404 Not Found", "Not found.")
        if path == "/login" and method in ("GET", "HEAD"):  # a bookmarked or typed-in URL
            return self.redirect(start_response)
        if method != "POST":
            return self.respond(start_response, "405 Method Not Allowed", "Use POST.",
                                headers=[("Allow", "POST")])
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
        user = session.user_id if session is not None else None
        return _PAGE.substitute(
            user=escape(user or ""), message=note, content=content,
            back=_BACK if error and not content else "", app=escape(self.app_name),
            namespace=escape(self.namespace), narrow=NARROW,
        ).encode()

    def respond(self, start_response: Callable[..., Any], status: str, text: str,
                session: Any = None, content: str = "",
                headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        body = self.page(session, content, text, error=not status.startswith("2"))
        start_response(status, [*_HEADERS, *(headers or []), ("Content-Length", str(len(body)))])
        return [body]

    @property
    def flash_cookie(self) -> str:
        return f"{self.app_name}-flash"

    def redirect(self, start_response: Callable[..., Any], message: str = "") -> list[bytes]:
        """303 to the home page, with ``message`` (a key of _MESSAGES) in the one-shot cookie."""
        headers = [("Location", "/"), ("Content-Length", "0"), ("Cache-Control", "no-store")]
        if message:
            headers.append(("Set-Cookie", f"{self.flash_cookie}={message}; Path=/; "
                            f"Max-Age={FLASH_MAX_AGE}; HttpOnly; SameSite=Lax"))
        start_response("303 See Other", headers)
        return [b""]

    def take_flash(self, environ: dict[str, Any], logged_in: bool) -> tuple[str, list]:
        """The note the last action left for this page (if it fits), and the header that
        removes it so that it shows once."""
        pairs = (part.strip().partition("=") for part in environ.get("HTTP_COOKIE", "").split(";"))
        key = next((value for name, _, value in pairs if name == self.flash_cookie), None)
        if key is None:
            return "", []
        text, for_logged_in = _MESSAGES.get(key, ("", logged_in))
        expire = ("Set-Cookie", f"{self.flash_cookie}=; Path=/; Max-Age=0; HttpOnly; "
                  "SameSite=Lax")
        return (text if for_logged_in == logged_in else ""), [expire]

    def home(self, environ: dict[str, Any], start_response: Callable[..., Any], session: Any):
        logged_in = session.user_id is not None
        message, headers = self.take_flash(environ, logged_in)
        if not logged_in:
            body = self.page(session, _LOGIN.substitute(user=""), message)
        else:
            session["visits"] = int(session.get("visits", 0)) + 1  # one write per page view
            body = self.page(session, self.sessions_table(session), message)
        start_response("200 OK", [*_HEADERS, *headers, ("Content-Length", str(len(body)))])
        return [body]

    def sessions_table(self, session: Any) -> str:
        csrf = _CSRF.substitute(token=escape(session.get("csrf", "")))
        now = time.time()  # one reading for every row
        rows = []
        mine = session.id
        for s in sorted(session.soid(), key=lambda s: (s["token"] != mine, s["idle"])):
            data = s.get("d", {})
            this = s["token"] == mine
            # this request is this device's latest activity
            signed_in, idle = session_times(s["token"], 0 if this else s["idle"], now)
            rows.append(_ROW.substitute(
                handle=handle(s["token"]), this="1" if this else "0",
                browser=escape(describe_browser(str(data.get("ua", "")))),
                marker=' <span class="this">(this device)</span>' if this else "",
                ip=escape(s["ip"]), idle="now" if this else escape(ago(idle)),
                signed_in=escape(ago(signed_in)) if signed_in is not None else "",
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
            if user and not has_visible(user):
                raise ValidationError("invalidFormat", "it has no visible character (use at "
                                      "least one letter, digit or symbol)")
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
