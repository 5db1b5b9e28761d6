"""Flask support: ``app.session_interface = RedisSessionInterface(app_name="myapp", ...)``.

``flask.session`` is then a redis-sessions ``Session`` (upgrade, destroy, soid, ... included) that
also honours Flask's ``SessionMixin`` contract: ``permanent`` with PERMANENT_SESSION_LIFETIME,
``new``, ``modified``, ``accessed`` and ``Vary: Cookie``; values round-trip through Flask's tagged
JSON (tuple, bytes, Markup, UUID, datetime). With flask-login, ``login_user()`` makes the session a
session of the user and ``logout_user()`` ends it.

It is saved in Flask's ``save_session`` step, before the response leaves, on an error response
too (as Flask's own cookie session: what a view set before it raised is kept). Changes made while
a streamed body iterates are not saved (use ``session.save()`` there, or the WSGI
``SessionMiddleware``). A logout (``destroy``, flask-login's ``logout_user()``) happens or raises
to the view, and the cookie is expired in either case.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, Request, Response
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin, session_json_serializer

from .cookies import CookieOptions
from .devices.model import Device
from .errors import BackendError
from .manager import RedisSessions
from .session import COOKIE_EXPIRE, COOKIE_SET, ENVIRON_KEY, Session, SessionHandler, logger
from .testing import isolated, worker_suffix

try:  # the flask-login bridge, when flask-login is installed
    from flask_login.signals import user_logged_out
except ImportError:  # pragma: no cover - flask-login is optional
    user_logged_out = None

__all__ = ["RedisSessionInterface", "FlaskSession", "TaggedJSONCodec"]


# SessionMixin's ``new`` is a plain attribute; the model's is a read-only property (Flask only reads it)
class FlaskSession(Session, SessionMixin):  # type: ignore[override]
    """A redis-sessions ``Session`` with Flask's ``permanent`` (the ``_permanent`` key); ``new``,
    ``modified`` and ``accessed`` are the session model's own."""

    @property
    def sid(self) -> str | None:
        """The session's id (its token), by Flask-Session's name for it."""
        return self.id


class TaggedJSONCodec:
    """The session ``codec`` for Flask's tagged JSON: what Flask's cookie session round-trips
    (tuple, bytes, Markup, UUID, datetime, ...) round-trips in Redis too."""

    def __init__(self, serializer: TaggedJSONSerializer) -> None:
        self.serializer = serializer

    def dump(self, value: Any) -> Any:
        return self.serializer.tag(value)

    def load(self, value: Any) -> Any:
        # untag works on one dict (json's object_hook): apply it inside out, as Flask's loads does
        if isinstance(value, dict):
            return self.serializer.untag({k: self.load(v) for k, v in value.items()})
        if isinstance(value, list):
            return [self.load(item) for item in value]
        return value


#: what a log-in as another user keeps of the session it replaces: flask-login's keys, the
#: flashes, Flask's permanent flag and flask-wtf's CSRF token
_LOGIN_KEYS = frozenset(("_user_id", "_fresh", "_id", "_remember", "_remember_seconds", "next",
                         "_flashes", "_permanent", "csrf_token"))


class _FlaskHandler(SessionHandler):
    session_class = FlaskSession

    def notices_sign_in(self) -> bool:
        from .devices.flask import device_signed_in

        return super().notices_sign_in() or bool(device_signed_in.receivers)

    def signed_in(self, session: Session, device: Device) -> object:
        """``on_sign_in``, then the blinker signal ``device_signed_in`` (errors logged)."""
        from .devices.flask import announce

        result = super().signed_in(session, device)
        try:
            announce(session, device)
        except Exception:
            logger.exception("a device_signed_in receiver failed for a sign-in of user %r in "
                             "app %s", session.user_id, session.app)
        return result


def _end(session: FlaskSession) -> None:
    """End a user session (a flask-login logout); what is left of its data (a flash, flask-login's
    "_remember": "clear") goes on in a new anonymous session. Raises when the logout failed, the
    leftovers kept so flask-login still clears its remember cookie."""
    leftovers = dict(session)
    try:
        session.destroy()
    finally:
        if leftovers.keys() - {"_permanent"}:
            session.update(leftovers)


def _logged_out(sender: Flask, **extra: Any) -> None:
    """flask-login's ``logout_user()``: the session ends now, so a failed logout raises to the
    view that asked for it (rather than at save time, after it answered "logged out")."""
    from flask import request

    interface = sender.session_interface
    session = request.environ.get(ENVIRON_KEY)
    if not isinstance(interface, RedisSessionInterface) or interface.user_id_key is None \
            or not isinstance(session, FlaskSession):
        return
    try:
        user = session.user_id
    except BackendError:  # on_backend_error="raise": the load failed, the logout is still tried
        user = None
    if user is not None or session._lost_token is not None:
        _end(session)


class RedisSessionInterface(SessionInterface):
    """A Flask session interface over redis-sessions; takes ``SessionHandler``'s options
    (``app_name``, ``sessions``/``redis``, ``ttl``, ``cookie``, ``secret_keys``, ``trust_proxy``,
    ``on_backend_error``, ``lazy``, ``anonymous``, ``anonymous_ttl``, ``codec``, ``on_sign_in``);
    every sign-in also sends ``redis_sessions.devices.flask.device_signed_in``.

    The cookie is named after the app (as in connect-redis-sessions), not SESSION_COOKIE_NAME;
    Flask's SESSION_COOKIE_DOMAIN/PATH/HTTPONLY/SECURE/SAMESITE/PARTITIONED are the defaults of
    the cookie options, ``cookie={...}`` wins. ``user_id_key`` is flask-login's key of the user id
    (None: no flask-login bridge). One interface serves one app.

    In testing mode (``app.testing``, set before the first request) the sessions live apart from
    the developer's, in ``test_namespace`` (default ``test_`` + the manager's namespace, plus
    pytest-xdist's worker name; None: the same namespace), emptied when first used and at exit.
    """

    #: Flask's tagged JSON serializer (the one SecureCookieSessionInterface uses)
    serializer = session_json_serializer

    def __init__(self, *, user_id_key: str | None = "_user_id",
                 test_namespace: str | None = "", **options: Any) -> None:
        self._cookie: Mapping[str, object] = dict(options.get("cookie") or {})
        self._test_namespace = test_namespace
        options.setdefault("codec", TaggedJSONCodec(self.serializer))
        self.handler = _FlaskHandler(**options)
        self.user_id_key = user_id_key
        self._app: Flask | None = None  # the app the cookie options were merged for
        if user_logged_out is not None:
            user_logged_out.connect(_logged_out)

    def _configure(self, app: Flask) -> None:
        """Merge the app's SESSION_COOKIE_* settings under the explicit cookie options."""
        defaults = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "httponly": self.get_cookie_httponly(app),
            "secure": self.get_cookie_secure(app),
            "samesite": self.get_cookie_samesite(app),
        }
        self.handler.cookie = CookieOptions({**defaults, **self._cookie})
        self._app = app
        manager = self.handler.manager
        if app.testing and self._test_namespace is not None \
                and isinstance(manager, RedisSessions):
            name = self._test_namespace or f"test_{manager.namespace}"
            suffix = worker_suffix()
            self.handler.manager = isolated(manager, f"{name}_{suffix}" if suffix else name)

    def open_session(self, app: Flask, request: Request) -> FlaskSession | None:  # type: ignore[override]
        if self._app is not app:
            self._configure(app)
        # None (no app name, or outside the cookie path): Flask uses its null session
        return self.handler.open(request.environ)  # type: ignore[return-value]

    def save_session(self, app: Flask, session: FlaskSession, response: Response) -> None:  # type: ignore[override]
        try:
            self._save(app, session, response)
        except Exception:
            if session.expiring:  # a logout: the cookie goes whatever failed after it
                self._set_cookie(app, session, response, COOKIE_EXPIRE, False)
            raise

    def _save(self, app: Flask, session: FlaskSession, response: Response) -> None:
        accessed = session.accessed
        if accessed:
            response.vary.add("Cookie")
        # writes made without reading go first, blind, in the request's only round trip; the
        # reply tells the data, so the steps below need no load of their own
        early = session.finish() if not session.loaded and session.pending else 0
        permanent = False
        # reading the data now would load a lazy session nobody touched: leave it alone
        if accessed or not self.handler.lazy:
            permanent = session.permanent
            try:
                self._follow_login(app, session, permanent)
            except BackendError as exc:  # the policy of finish(): serve, log, or raise
                if self.handler.raise_errors or session.expiring:
                    raise
                logger.error("could not follow flask-login in app %s: %s", session.app, exc)
            if permanent:
                lifetime = int(app.permanent_session_lifetime.total_seconds())
                if session.ttl != lifetime:
                    session.ttl = lifetime
        op = session.finish() or early
        if not op and permanent and session.id is not None \
                and app.config["SESSION_REFRESH_EACH_REQUEST"]:
            op = COOKIE_SET
        if op:
            self._set_cookie(app, session, response, op, permanent)

    def _follow_login(self, app: Flask, session: FlaskSession, permanent: bool) -> None:
        """flask-login's ``_user_id`` drives the session's kind: a new id logs the session in
        (``upgrade``), a user session that lost it (``logout_user``, strong session protection)
        is destroyed and what is left of its data goes on in an anonymous session."""
        key = self.user_id_key
        if key is None or getattr(app, "login_manager", None) is None:
            return
        user_id = session.get(key)
        if user_id is not None:
            if str(user_id) != session.user_id:
                # another user's data is dropped by upgrade: carry what the log-in itself wrote
                carried = {} if session.user_id is None else \
                    {k: v for k, v in session.items() if k in _LOGIN_KEYS}
                ttl = int(app.permanent_session_lifetime.total_seconds()) if permanent else None
                session.upgrade(str(user_id), ttl)
                session.update(carried)
        elif session.user_id is not None:  # strong session protection, a popped _user_id
            _end(session)

    def _set_cookie(self, app: Flask, session: FlaskSession, response: Response, op: int,
                    permanent: bool) -> None:
        cookie = self.handler.cookie
        name = cookie.name(session.app)
        flags: dict[str, Any] = {
            "path": cookie.path, "domain": cookie.domain, "secure": cookie.secure,
            "httponly": cookie.httponly, "samesite": cookie.samesite,
            "partitioned": self.get_cookie_partitioned(app),
        }
        if op == COOKIE_EXPIRE:
            response.delete_cookie(name, **flags)
        else:
            max_age = int(app.permanent_session_lifetime.total_seconds()) if permanent \
                else cookie.max_age
            expires = None if max_age is None \
                else datetime.now(timezone.utc) + timedelta(seconds=max_age)
            response.set_cookie(name, self.handler.cookie_value(session), max_age=max_age,
                                expires=expires, **flags)
        response.vary.add("Cookie")
