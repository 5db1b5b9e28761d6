"""The "your devices" pages as a Flask blueprint.

    from redis_sessions.devices.flask import devices_blueprint
    app.register_blueprint(devices_blueprint, url_prefix="/account/devices")

Blueprint ``redis_sessions_devices``, endpoints ``list`` (GET), ``end`` (POST ``handle``) and
``end_others`` (POST): HTML (the Jinja template ``redis_sessions/devices.html``, overridable from
the app's templates; it extends ``REDIS_SESSIONS_DEVICES_BASE``, default
``redis_sessions/base.html``) or JSON with ``Accept: application/json``. With a flask-login
``LoginManager`` its ``login_required`` guards them (else a session with a user id is
required); with flask-wtf's ``CSRFProtect`` on, the forms carry its token and it refuses POSTs
without one (without it, the blueprint checks a token of its own in the session).
``device_signed_in`` (a blinker signal, sender: the app, with ``session`` and ``device``) is sent
on every sign-in through ``RedisSessionInterface``.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from blinker import Namespace
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session as flask_session,
    url_for,
)
from markupsafe import Markup

from ..flask import RedisSessionInterface
from ..session import Session
from . import pages

__all__ = ["devices_blueprint", "device_signed_in"]

_signals = Namespace()
#: sent after a sign-in through ``RedisSessionInterface``: sender the app, ``session`` and
#: ``device`` (the new session's ``redis_sessions.devices.Device``)
device_signed_in = _signals.signal("redis-sessions-device-signed-in")

devices_blueprint = Blueprint("redis_sessions_devices", __name__, template_folder="templates")

DEFAULT_BASE = "redis_sessions/base.html"
_CSRF_KEY = "_rs_devices_csrf"  # the blueprint's own CSRF token, when flask-wtf's is not on

View = Callable[[Session], Any]


def _wants_json() -> bool:
    return pages.wants_json(request.headers.get("Accept"))


def _session() -> Session | None:
    """The request's redis-sessions session; None when it has none (its app name or cookie path
    leaves it out: Flask's null session)."""
    session = flask_session._get_current_object()  # type: ignore[attr-defined]
    if isinstance(session, Session):
        return session
    if not isinstance(current_app.session_interface, RedisSessionInterface):
        raise RuntimeError("the devices blueprint needs app.session_interface = "
                           "redis_sessions.flask.RedisSessionInterface(...)")
    return None


def _flask_wtf_on() -> bool:
    return "csrf" in current_app.extensions


def _field_name() -> str:
    return str(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))


def _csrf_value(session: Session) -> str:
    """The token the page's forms carry: flask-wtf's, or the blueprint's own."""
    if _flask_wtf_on():
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = session[_CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def _own_csrf_ok(session: Session) -> bool:
    """Without flask-wtf: the form field or the X-CSRFToken header matches the session's."""
    expected = session.get(_CSRF_KEY)
    sent = request.form.get(_field_name()) or request.headers.get("X-CSRFToken") or ""
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), sent.encode())


def _signed_in(view: View) -> Callable[[], Any]:
    """flask-login's login_required when the app has a LoginManager; in any case the session
    must be a user's, and a POST must carry the CSRF token."""

    @functools.wraps(view)
    def guarded() -> Any:
        manager = getattr(current_app, "login_manager", None)
        if manager is not None:
            from flask_login import current_user, login_required

            if _wants_json() and not current_user.is_authenticated:
                return jsonify(error=pages.SIGNED_OUT), 401
            return login_required(inner)()
        return inner()

    def inner() -> Any:
        session = _session()
        if session is None or session.user_id is None:
            if _wants_json():
                return jsonify(error=pages.SIGNED_OUT), 401
            abort(401)
        if request.method == "POST" and not _flask_wtf_on() and not _own_csrf_ok(session):
            abort(400, "The CSRF token is missing or wrong.")
        return view(session)

    return guarded


def _done(message: str, *, ok: bool, ended: int, devices: list[Any]) -> Any:
    """After a POST: JSON, or the message flashed and a redirect back to the list."""
    if _wants_json():
        body = pages.payload(devices, ended=ended)
        if not ok:
            body["error"] = message
        return jsonify(body), 200 if ok else 404
    flash(message, "success" if ok else "error")
    return redirect(url_for(".list"))


@devices_blueprint.get("/", endpoint="list")
@_signed_in
def list_devices(session: Session) -> Any:
    """The user's devices, this one first."""
    devices = session.devices()
    if _wants_json():
        return jsonify(pages.payload(devices))
    base = current_app.config.get("REDIS_SESSIONS_DEVICES_BASE", DEFAULT_BASE)
    return render_template(pages.TEMPLATE, devices=devices, base_template=base,
                           others=sum(not d.current for d in devices),
                           csrf_field=_field_name(), csrf_value=_csrf_value(session))


def _posted_handle() -> str:
    if request.is_json:
        body = request.get_json(silent=True)
        handle = body.get("handle") if isinstance(body, dict) else None
        return handle if isinstance(handle, str) else ""
    return request.form.get("handle", "")


@devices_blueprint.post("/end", endpoint="end")
@_signed_in
def end_device(session: Session) -> Any:
    """Log one device out (this one: flask-login's logout_user, or ``destroy()``)."""
    handle = _posted_handle()
    devices = session.devices()
    target = next((d for d in devices if d.handle == handle), None)
    if target is None:
        ended = 0
    elif target.current:
        if getattr(current_app, "login_manager", None) is not None:
            from flask_login import logout_user

            logout_user()  # the session interface ends the session at the end of the request
        else:
            session.destroy()
        ended = 1
    else:
        ended = session.destroydevice(handle)  # 0 when it ended meanwhile
    if target is None or not ended:
        return _done(pages.NOT_FOUND, ok=False, ended=0, devices=devices)
    left = [] if target.current else [d for d in devices if d.handle != handle]
    return _done(pages.ended_message(target), ok=True, ended=ended, devices=left)


@devices_blueprint.post("/end-others", endpoint="end_others")
@_signed_in
def end_other_devices(session: Session) -> Any:
    """Log out every device of the user but this one (one atomic script)."""
    ended = session.destroyothers()
    current = [d for d in session.devices() if d.current] if _wants_json() else []
    return _done(pages.others_message(ended), ok=True, ended=ended, devices=current)


@devices_blueprint.app_template_filter("device_icon")
def _device_icon(kind: str) -> Markup:
    return Markup(pages.icon(kind))  # our own constant markup


@devices_blueprint.app_template_filter("device_ago")
def _device_ago(moment: Any) -> str:
    return pages.ago(moment)


@devices_blueprint.app_template_global("devices_stylesheet")
def _devices_stylesheet() -> Markup:
    return Markup(pages.stylesheet())  # a file shipped with the package


def announce(session: Session, device: Any) -> None:
    """Send ``device_signed_in`` (RedisSessionInterface's handler calls it)."""
    if device_signed_in.receivers:
        device_signed_in.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                              session=session, device=device)
