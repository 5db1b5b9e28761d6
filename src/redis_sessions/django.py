"""Django session engine: ``SESSION_ENGINE = "redis_sessions.django"``.

Configured by ``settings.REDIS_SESSIONS`` (``app_name``, ``redis`` or ``sessions``, other
``SessionHandler`` options; ``ttl`` defaults to ``SESSION_COOKIE_AGE``) and Django's
``SESSION_COOKIE_*`` settings: Django's own SessionMiddleware sets the cookie, whose value is the
session's token. ``SessionStore`` is a facade over one ``redis_sessions.session.Session`` (its
``_session_cache``), so SessionBase's mapping methods write through it and only the diff is saved.
django.contrib.auth's login turns the session into one of ``str(user.pk)`` (``Session.upgrade``),
recording the device (User-Agent, IP, time) and announcing it: the handler's ``on_sign_in`` (a
callable or its dotted path in ``REDIS_SESSIONS``) and the ``device_signed_in`` signal
(``redis_sessions.devices.django.signals``).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ._constants import MIN_TTL
from .devices.django.signals import device_signed_in
from .devices.model import Device
from .errors import SessionRotated
from .session import Session, SessionHandler

__all__ = ["SessionStore", "handler", "app_name"]

logger = logging.getLogger("redis_sessions")

_handler: SessionHandler | None = None


def handler() -> SessionHandler:
    """The SessionHandler built from ``settings.REDIS_SESSIONS`` (again after a settings change)."""
    global _handler
    if _handler is None:
        options = dict(getattr(settings, "REDIS_SESSIONS", None) or {})
        if not isinstance(options.get("app_name"), str):  # SessionStore never sees the request
            raise ImproperlyConfigured(
                'SESSION_ENGINE "redis_sessions.django" needs settings.REDIS_SESSIONS = '
                '{"app_name": "<a string>", "redis": <a URL or client>, ...}'
            )
        if "cookie" in options or "secret_keys" in options:
            raise ImproperlyConfigured(
                "REDIS_SESSIONS: Django's SessionMiddleware sets the cookie (SESSION_COOKIE_*); "
                "'cookie' and 'secret_keys' do not apply"
            )
        options.setdefault("ttl", settings.SESSION_COOKIE_AGE)
        if isinstance(options.get("on_sign_in"), str):
            options["on_sign_in"] = import_string(options["on_sign_in"])
        _handler = SessionHandler(**options)
    return _handler


def app_name() -> str:
    """The app name of ``settings.REDIS_SESSIONS`` (also the user index the devices live in)."""
    return str(settings.REDIS_SESSIONS["app_name"])


def _settings_changed(setting: str, **kwargs: Any) -> None:
    global _handler
    if setting in ("REDIS_SESSIONS", "SESSION_COOKIE_AGE"):
        _handler = None


class SessionStore(SessionBase):
    """``request.session``: Django's SessionBase over a redis-sessions Session, anonymous until
    login. ``session_key`` is the Session's token; ``modified`` is true when the data changed or
    the token is not the one the request came with (the cookie must then be sent)."""

    _session_cache: Session

    def __init__(self, session_key: str | None = None) -> None:
        self._session_cache = handler().session(token=session_key or None)
        super().__init__(session_key)  # keeps the incoming key as _session_key

    @property
    def session_key(self) -> str | None:
        return self._session_cache.token

    @property
    def modified(self) -> bool:
        session = self._session_cache
        rekeyed = session.token != self._session_key and not session.rotated
        return rekeyed or session.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # SessionBase sets it after each write, which the Session already tracks (as a diff);
        # only a bare ``modified = True`` forces a save of the whole data.
        if value and not self._session_cache.modified:
            self._session_cache.modified = True

    def is_empty(self) -> bool:
        # a token rotated by a concurrent login is not empty: the browser keeps its new cookie
        session = self._session_cache
        return session.token is None and not session.rotated and not session

    def clear(self) -> None:
        self._session.clear()

    def _expiry_ttl(self) -> int | None:
        """The ttl ``set_expiry()`` asks for (seconds, at least MIN_TTL), None when unset."""
        if self.get("_session_expiry") is None:
            return None
        return max(MIN_TTL, self.get_expiry_age())

    def set_expiry(self, value: Any) -> None:
        """Django's set_expiry; the session's Redis ttl follows (back to the default when
        ``value`` is None)."""
        super().set_expiry(value)
        session = self._session
        ttl = self._expiry_ttl()
        if ttl is None:
            ttl = handler().ttl if session.user_id is not None else handler().anonymous_ttl
        if ttl != session.ttl:
            session.ttl = ttl

    async def aset_expiry(self, value: Any) -> None:
        await sync_to_async(self.set_expiry)(value)

    # -- SessionBase's storage contract --------------------------------------------------------

    def load(self) -> Session:
        session = self._session_cache
        session.reload()
        return session

    def exists(self, session_key: str | None) -> bool:
        return bool(session_key) and handler().session(token=session_key).id is not None

    def create(self) -> None:
        """Store the session now (a new one is stored empty); a stored one gets a new key."""
        if self._session_cache.token is None:
            self.save(must_create=True)
        else:
            self.cycle_key()

    def save(self, must_create: bool = False) -> None:
        session = self._session_cache
        stored = session.token is not None
        if must_create and stored:
            raise CreateError
        emptied = stored and session.user_id is None and not session
        if not stored or emptied:
            session.modified = True  # Django keeps a session stored even when it is empty
        try:
            session.save()
        except SessionRotated:
            raise UpdateError from None  # Django answers SessionInterrupted (400)
        if stored and session.token is None and not emptied:
            raise UpdateError  # deleted meanwhile (a logout elsewhere)

    def delete(self, session_key: str | None = None) -> None:
        session = self._session_cache
        if session_key is None or session_key == session.token:
            session.destroy()
        elif session_key:
            handler().session(token=session_key).destroy()

    def flush(self) -> None:
        """Kill the session and start an empty one (logout)."""
        self.accessed = True
        self._session_cache.destroy()
        self._session_cache = handler().session()

    async def aflush(self) -> None:
        await sync_to_async(self.flush)()

    def cycle_key(self) -> None:
        """A new key for the same data, copied inside Redis."""
        self._session.regenerate()

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    @classmethod
    def clear_expired(cls) -> None:
        handler().manager.wipe()

    # -- redis-sessions extras -----------------------------------------------------------------

    @property
    def user_id(self) -> str | None:
        """The user id of a logged-in session, None while anonymous."""
        return self._session.user_id

    def soid(self) -> list[dict]:
        """The sessions of this session's user (each with its ``token``)."""
        return self._session.soid()

    def destroyall(self) -> int:
        """Kill every session of this user (all devices); this one starts empty."""
        return self._session.destroyall()

    def devices(self) -> list[Device]:
        """This user's signed-in sessions as ``Device``s, this one first (``Session.devices``)."""
        return self._session.devices()

    def destroydevice(self, handle: str) -> int:
        """End one of this user's sessions by its device handle (``Session.destroydevice``)."""
        return self._session.destroydevice(handle)

    def destroyothers(self) -> int:
        """End every session of this user but this one, atomically (``Session.destroyothers``)."""
        return self._session.destroyothers()

    def upgrade(self, user_id: str | int, ttl: int | None = None, *,
                ip: str | None = None, user_agent: str | None = None) -> SessionStore:
        """Make this a session of ``user_id`` (new key; the data, saved or not, moves along)."""
        self._session.upgrade(user_id, self._expiry_ttl() if ttl is None else ttl, ip=ip,
                              user_agent=user_agent)
        return self


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """auth's login: the session becomes the user's, recording the device, which is then
    announced (``on_sign_in``, then ``device_signed_in`` with the request and the user)."""
    store = getattr(request, "session", None)
    if not isinstance(store, SessionStore):
        return
    options = handler()
    session = store._session
    notice = options.notices_sign_in() or device_signed_in.has_listeners()
    device = session._drive(session._upgrade_op(
        str(user.pk), store._expiry_ttl(), options.client_ip(request.META),
        request.META.get("HTTP_USER_AGENT", ""), notice))
    if device is None:
        return
    options.signed_in(session, device)
    for receiver, error in device_signed_in.send_robust(SessionStore, request=request,
                                                         user=user, device=device):
        if isinstance(error, Exception):
            logger.error("device_signed_in receiver %r failed for user %r: %r", receiver,
                         session.user_id, error)


setting_changed.connect(_settings_changed, dispatch_uid="redis_sessions.django.settings")
user_logged_in.connect(_logged_in, dispatch_uid="redis_sessions.django.login")
