"""The demo WSGI app: log in as a user id, see that id's devices, log devices out.

The device list is the library's own (``Session.devices()``, ``destroydevice()``,
``destroyothers()``, the ``redis_sessions.devices`` labels and stylesheet): the demo only lays out
the page. Every state change is a POST form carrying the session's CSRF token; pages are plain
string templates with every value passed through ``html.escape``. Devices are named by their
handle, never by a token, and only the logged-in user's devices can be ended. "Logged in" means
``session.user_id is not None``. The note after an action ("Logged out.") travels in a one-shot
cookie, so a reload or an old URL never shows it again; a browser whose session was ended
elsewhere is told so on its next visit.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from html import escape
from string import Template
from typing import Any
from urllib.parse import parse_qs

from ..devices import Device, pages
from ..errors import ValidationError
from ..manager import RedisSessions
from ..wsgi import SessionMiddleware, get_session

__all__ = ["DemoApp", "make_app", "has_visible"]

MAX_FORM = 4096  # bytes of a POST body the demo reads
ACTIVITY_WINDOW = 600
FLASH_MAX_AGE = 60  # seconds the one-shot note of an action waits for the page that shows it

_STYLE = """
.rs-page { color: #1f2328; }
.demo-bar { background: #fff; border-bottom: 1px solid #d8dee4; }
.demo-bar .rs-devices { padding: .75rem 1.25rem; display: flex; align-items: center;
  justify-content: space-between; gap: 1rem; font-size: 15px; }
.demo-bar .rs-button { padding: .4rem .75rem; font-size: .8125rem; }
.demo-brand { font-weight: 700; color: #1f2328; text-decoration: none; letter-spacing: -.01em;
  display: flex; align-items: center; gap: .5rem; white-space: nowrap; }
.demo-brand b { color: #cf222e; }
.demo-dot { width: .7rem; height: .7rem; border-radius: 50%; background: #cf222e; }
.demo-who { color: #59636e; font-size: .875rem; display: flex; align-items: center; gap: .75rem;
  min-width: 0; }
.demo-who strong { color: #1f2328; overflow-wrap: anywhere; }
.rs-devices h2 { font-size: 1.125rem; margin: 2rem 0 .75rem; font-weight: 650; }
.rs-devices .demo-stats { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr));
  gap: .75rem; margin: 0 0 .5rem; padding: 0; list-style: none; }
.rs-devices .demo-stats li { background: #fff; border: 1px solid #d8dee4; border-radius: 10px;
  padding: .7rem .9rem; font-size: .875rem; line-height: 1.3; color: #59636e; }
.rs-devices .demo-stats strong { display: block; font-size: 1.25rem; color: #1f2328; }
.rs-devices .demo-card { background: #fff; border: 1px solid #d8dee4; border-radius: 12px;
  padding: 1.5rem; }
.rs-devices label { display: block; font-weight: 600; margin-bottom: .4rem; }
.rs-devices input[type=text] { font: inherit; width: 100%; padding: .6rem .75rem;
  border: 1px solid #d8dee4; border-radius: 8px; margin-bottom: 1rem; }
.rs-devices input[type=text]:focus { outline: 2px solid #0969da; outline-offset: 1px;
  border-color: #0969da; }
.rs-devices .rs-button.rs-large { padding: .65rem 1.2rem; font-size: .95rem; }
.rs-devices .demo-foot { margin-top: 2.5rem; color: #59636e; font-size: .8rem; }
.rs-devices code { font-size: .85em; background: #eef1f4; padding: .05rem .3rem;
  border-radius: 4px; }
.rs-devices .demo-confirm { border-color: #ffcecb; }
.rs-devices .demo-card > p:first-child { margin-top: 0; }
@media (max-width: 36rem) {
  .demo-bar .rs-devices { padding: .6rem 1rem; gap: .5rem; }
  .demo-brand { font-size: 14px; }
  .demo-who span { display: none; }
  .rs-devices .demo-stats { gap: .5rem; }
  .rs-devices .demo-stats li { padding: .6rem .7rem; font-size: .8rem; }
}
"""

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title &middot; redis-sessions demo</title>
<style>$devices_css
$style</style></head>
<body class="rs-page">
<header class="demo-bar"><div class="rs-devices">
<a class="demo-brand" href="/"><span class="demo-dot"></span>redis-sessions <b>demo</b></a>
$who
</div></header>
<main class="rs-devices" data-user="$user">
$message
$content
$back
<p class="demo-foot">App <code>$app</code> &middot; cookie <code>$app</code> &middot;
sessions in Redis namespace <code>$namespace</code></p>
</main></body></html>
""")

_WHO = Template("""<div class="demo-who"><span>Signed in as <strong>$user</strong></span>
<form method="post" action="/logout">$csrf<button class="rs-button" type="submit">Log out this device</button></form></div>""")

_LOGIN = Template("""<h1>Log in</h1>
<p class="rs-lede">Use any user id: there is no password in this demo. Log in with the same id
from another browser (or a private window) to see one user's sessions on several devices, and
log them out from here.</p>
<form class="demo-card" method="post" action="/login">
<label for="user">User id</label>
<input type="text" id="user" name="user" value="$user" maxlength="128" required autofocus
 autocomplete="username" placeholder="alice">
<button class="rs-button rs-primary rs-large" type="submit">Log in</button>
</form>""")

_HOME = Template("""<h1>Your devices</h1>
<p class="rs-lede">Every browser you logged in from as <strong>$user</strong> is a session of its
own. Log out the ones you don't recognise.</p>
<ul class="demo-stats">
<li><strong>$visits</strong>page view$plural in this session</li>
<li><strong>$devices</strong>device$devices_plural signed in</li>
<li><strong>$active</strong>user$active_plural active in 10 min</li>
</ul>
<h2>Signed-in devices</h2>
<ul class="rs-list">
$rows
</ul>
<div class="rs-actions">
$others
<form method="post" action="/logout-all">$csrf<button class="rs-button rs-danger" type="submit">Log out everywhere&hellip;</button></form>
</div>
""")

_OTHERS = Template("""<form method="post" action="/logout-others">$csrf<button class="rs-button" type="submit">Log out all other devices</button></form>""")

_ROW = Template("""<li class="rs-device$current_class" data-session="$handle" data-this="$this">
<span class="rs-kind" title="$kind">$icon</span>
<div class="rs-main"><p class="rs-label">$label$badge</p>
<p class="rs-meta"><span>$ip</span> <span>$active</span>$signed_in</p></div>
$action</li>""")

_END = Template("""<form method="post" action="/kill">$csrf
<input type="hidden" name="device" value="$handle">
<button class="rs-button" type="submit" aria-label="Log out $label">Log out</button></form>""")

_CONFIRM = Template("""<h1>Log out everywhere?</h1>
<div class="demo-card demo-confirm">
<p>This ends all $count session$plural of <strong>$user</strong>, on every device, this one
included. Each device will have to log in again.</p>
<div class="rs-actions">
<form method="post" action="/logout-all">$csrf<input type="hidden" name="confirm" value="yes">
<button class="rs-button rs-danger rs-solid rs-large" type="submit">Yes, log out everywhere</button></form>
<a class="rs-button rs-large" href="/">Cancel</a>
</div></div>""")

_CSRF = Template('<input type="hidden" name="csrf" value="$token">')

# the note of each action, and whether it belongs on the page of a logged-in visitor: a note
# that does not fit the state the page shows (logged out elsewhere in between) is dropped
_MESSAGES = {
    "in": ("Logged in.", True),
    "killed": ("Logged out the other device.", True),
    "others": ("Logged out all other devices.", True),
    "out": ("Logged out on this device.", False),
    "all": ("Logged out everywhere.", False),
    "expired": ("Your session has ended: log in again.", False),
}
#: shown to a browser whose cookie names a session that is gone
ENDED = ("You were logged out on this device: from another device, or after a long time "
         "without activity. Log in again.")

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


def has_visible(user_id: str) -> bool:
    """Whether the id shows something: a letter, digit, punctuation or symbol that is drawn."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK for c in user_id)


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _row(device: Device, csrf: str) -> str:
    signed_in = (f" <span>Signed in {escape(pages.ago(device.signed_in))}</span>"
                 if device.signed_in else "")
    return _ROW.substitute(
        handle=escape(device.handle), this="1" if device.current else "0",
        current_class=" rs-current" if device.current else "", kind=escape(device.kind),
        icon=pages.icon(device.kind), label=escape(device.label),
        badge='<span class="rs-badge">This device</span>' if device.current else "",
        ip=escape(device.ip or "unknown IP"),
        active="Active now" if device.current else f"Active {escape(pages.ago(device.last_active))}",
        signed_in=signed_in,
        action="" if device.current else _END.substitute(csrf=csrf, handle=escape(device.handle),
                                                          label=escape(device.label)),
    )


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
            "/logout-others": self.logout_others,
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
                return self.respond(start_response, "403 Forbidden", "Bad or missing form token.",
                                    session)
        return action(environ, start_response, session, form)

    # -- pages ---------------------------------------------------------------------------------

    def page(self, session: Any, content: str, message: str = "", error: bool = False,
             title: str = "", tone: str = "") -> bytes:
        """The page; a note in ``message`` (``error``: red; ``tone`` "info": blue)."""
        tone = "error" if error else tone
        note = (f'<ul class="rs-notes"><li class="rs-note{" rs-" + tone if tone else ""}" '
                f'role="status">{escape(message)}</li></ul>') if message else ""
        user = session.user_id if session is not None else None
        who = _WHO.substitute(user=escape(user), csrf=self.csrf_field(session)) if user else ""
        return _PAGE.substitute(
            title=escape(title or ("Your devices" if user else "Log in")), devices_css=pages.stylesheet(),
            style=_STYLE, who=who, user=escape(user or ""), message=note, content=content,
            back=_BACK if error and not content else "", app=escape(self.app_name),
            namespace=escape(self.namespace),
        ).encode()

    @staticmethod
    def csrf_field(session: Any) -> str:
        return _CSRF.substitute(token=escape(str(session.get("csrf", ""))))

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

    def _cookies(self, environ: dict[str, Any]) -> dict[str, str]:
        pairs = (part.strip().partition("=") for part in environ.get("HTTP_COOKIE", "").split(";"))
        return {name: value for name, _, value in pairs if name}

    def take_flash(self, environ: dict[str, Any], logged_in: bool) -> tuple[str, list]:
        """The note the last action left for this page (if it fits), and the header that
        removes it so that it shows once."""
        key = self._cookies(environ).get(self.flash_cookie)
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
            tone = ""
            # the cookie named a session that is gone: ended from another device, or expired
            if not message and session.new and self.app_name in self._cookies(environ):
                message, tone = ENDED, "info"
            body = self.page(session, _LOGIN.substitute(user=""), message, tone=tone)
        else:
            session["visits"] = int(session.get("visits", 0)) + 1  # one write per page view
            body = self.page(session, self.devices_page(session), message)
        start_response("200 OK", [*_HEADERS, *headers, ("Content-Length", str(len(body)))])
        return [body]

    def devices_page(self, session: Any) -> str:
        csrf = self.csrf_field(session)
        devices = session.devices()
        active = session.activity(ACTIVITY_WINDOW)
        visits = session["visits"]
        others = sum(not d.current for d in devices)
        return _HOME.substitute(
            user=escape(session.user_id), visits=visits, plural=_plural(visits),
            devices=len(devices), devices_plural=_plural(len(devices)),
            active=active, active_plural=_plural(active),
            rows="\n".join(_row(d, csrf) for d in devices), csrf=csrf,
            others=_OTHERS.substitute(csrf=csrf) if others else "",
        )

    # -- actions (POST) ------------------------------------------------------------------------

    def login(self, environ, start_response, session, form):
        user = form.get("user", "").strip()
        try:
            if user and not has_visible(user):
                raise ValidationError("invalidFormat", "it has no visible character (use at "
                                      "least one letter, digit or symbol)")
            session.upgrade(user)  # records this device: its User-Agent, IP and the time
        except ValidationError as exc:
            return self.respond(start_response, "400 Bad Request", f"That user id won't do: "
                                f"{exc.message}.", session, _LOGIN.substitute(user=escape(user)))
        session["visits"] = 0
        session["csrf"] = secrets.token_urlsafe(18)
        return self.redirect(start_response, "in")

    def logout(self, environ, start_response, session, form):
        """"Log out this device"."""
        session.destroy()
        return self.redirect(start_response, "out")

    def logout_others(self, environ, start_response, session, form):
        """"Log out all other devices": one atomic script."""
        session.destroyothers()
        return self.redirect(start_response, "others")

    def logout_all(self, environ, start_response, session, form):
        """"Log out everywhere": asks first, then ends every session of the user."""
        if form.get("confirm") != "yes":
            count = len(session.devices())
            content = _CONFIRM.substitute(count=count, plural=_plural(count),
                                          user=escape(session.user_id),
                                          csrf=self.csrf_field(session))
            body = self.page(session, content, title="Log out everywhere?")
            start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(body)))])
            return [body]
        session.destroyall()
        return self.redirect(start_response, "all")

    def kill(self, environ, start_response, session, form):
        """A row's "Log out": one of this user's other devices, by its handle."""
        if not session.destroydevice(form.get("device", "")):  # not one of this user's
            return self.respond(start_response, "404 Not Found", "No such device of yours.",
                                session)
        # this very device (its own row): destroydevice logged it out
        return self.redirect(start_response, "out" if session.user_id is None else "killed")


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
