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

Under Django's test runner and pytest-django (once ``setup_test_environment()`` ran) the sessions
live apart from the developer's, as the test database does: in the namespace
``REDIS_SESSIONS["test_namespace"]`` (default ``test_`` + the namespace, with the worker's suffix
when tests run in parallel; None shares the namespace), emptied when first used and at exit.
``flush_test_sessions()`` empties it between tests. The async methods (``aget``, ``aset``,
``acycle_key``, ``aflush``, ...) run on an ``AsyncRedisSessions`` (``"async_sessions"``, else one
built for the same Redis), never blocking the event loop.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ._constants import MIN_TTL
from .aio import AsyncRedisSessions
from .devices.django.signals import device_signed_in
from .devices.model import Device
from .errors import SessionRotated
from .manager import RedisSessions
from .session import Session, SessionHandler, SessionOp, drive_async
from .testing import isolated, purge, worker_suffix

__all__ = ["SessionStore", "handler", "app_name", "flush_test_sessions"]

logger = logging.getLogger("redis_sessions")

T = TypeVar("T")
_handler: SessionHandler | None = None
_async_manager: AsyncRedisSessions | None = None


def _under_tests() -> bool:
    """Whether Django's test environment is set up (its test runner and pytest-django both
    call ``setup_test_environment()``, which keeps its saved state here until teardown)."""
    from django.test import utils

    return hasattr(utils._TestState, "saved_data")


def _test_namespace(namespace: str, options: dict[str, Any]) -> str | None:
    """The namespace of a test run, named as Django names the test database: ``test_`` plus the
    namespace, plus the worker's suffix under ``manage.py test --parallel`` and pytest-xdist."""
    name = options.pop("test_namespace", f"test_{namespace}")
    if name is None:
        return None
    from django.test import runner

    worker = getattr(runner, "_worker_id", 0)
    suffix = worker_suffix() or (str(worker) if worker else "")
    return f"{name}_{suffix}" if suffix else name


def flush_test_sessions() -> int:
    """Remove every session of the test run (e.g. in ``tearDown`` or an autouse fixture, so no
    session leaks from one test to the next, as the test database's rows do not); refused
    outside a test run."""
    manager = handler().manager
    if not _under_tests() or not isinstance(manager, RedisSessions) \
            or not manager.namespace.startswith("test_"):
        raise RuntimeError("flush_test_sessions() empties a test run's namespace only")
    return purge(manager)


def handler() -> SessionHandler:
    """The SessionHandler built from ``settings.REDIS_SESSIONS`` (again after a settings change)."""
    global _handler, _async_manager
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
        manager = options.pop("sessions", None)
        if manager is None:
            manager = RedisSessions(options.pop("redis", None))
        async_manager = options.pop("async_sessions", None)
        test_namespace = _test_namespace(manager.namespace, options)
        if test_namespace is not None and _under_tests():
            manager = isolated(manager, test_namespace)
            async_manager = None  # built below, for the test namespace
        if async_manager is None:
            async_manager = AsyncRedisSessions.beside(manager)
        _handler = SessionHandler(sessions=manager, **options)
        _async_manager = async_manager
    return _handler


def app_name() -> str:
    """The app name of ``settings.REDIS_SESSIONS`` (also the user index the devices live in)."""
    return str(settings.REDIS_SESSIONS["app_name"])


def async_manager() -> AsyncRedisSessions | None:
    """The async manager of the async methods (None: they run the blocking one in a thread)."""
    handler()
    return _async_manager


async def _adrive(session: Session, op: SessionOp[T]) -> T:
    """Run a session operation from a coroutine: on the async manager, else in a thread."""
    manager = async_manager()
    if manager is None:
        return await sync_to_async(session._drive)(op)
    return await drive_async(session, op, manager)


def _settings_changed(setting: str, **kwargs: Any) -> None:
    global _handler, _async_manager
    if setting in ("REDIS_SESSIONS", "SESSION_COOKIE_AGE"):
        _handler = _async_manager = None


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
        self._follow_expiry()

    async def aset_expiry(self, value: Any) -> None:
        await super().aset_expiry(value)  # loads the session through _aget_session
        self._follow_expiry()

    def _follow_expiry(self) -> None:
        session = self._session
        ttl = self._expiry_ttl()
        if ttl is None:
            ttl = handler().ttl if session.user_id is not None else handler().anonymous_ttl
        if ttl != session.ttl:
            session.ttl = ttl

    async def _aget_session(self, no_load: bool = False) -> Session:  # type: ignore[override]
        self.accessed = True
        session = self._session_cache
        if not session.loaded:
            await _adrive(session, session._load_op())
        return session

    # -- SessionBase's storage contract (each written once, as an operation both drivers run) --

    def load(self) -> Session:
        session = self._session_cache
        session.reload()
        return session

    async def aload(self) -> Session:
        session = self._session_cache
        await _adrive(session, session._reload_op())
        return session

    def exists(self, session_key: str | None) -> bool:
        return bool(session_key) and handler().session(token=session_key).id is not None

    async def aexists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        session = handler().session(token=session_key)
        await _adrive(session, session._load_op())
        return session.token is not None

    def create(self) -> None:
        """Store the session now (a new one is stored empty); a stored one gets a new key."""
        if self._session_cache.token is None:
            self.save(must_create=True)
        else:
            self.cycle_key()

    async def acreate(self) -> None:
        if self._session_cache.token is None:
            await self.asave(must_create=True)
        else:
            await self.acycle_key()

    def save(self, must_create: bool = False) -> None:
        self._session_cache._drive(self._save_op(must_create))

    async def asave(self, must_create: bool = False) -> None:
        await _adrive(self._session_cache, self._save_op(must_create))

    def _save_op(self, must_create: bool) -> SessionOp[None]:
        session = self._session_cache
        stored = session.token is not None
        if must_create and stored:
            raise CreateError
        if stored:
            yield from session._ensure_loaded()
        emptied = stored and session._meta is None and not session._data
        if not stored or emptied:
            session.modified = True  # Django keeps a session stored even when it is empty
        try:
            yield from session._save_op()
        except SessionRotated:
            raise UpdateError from None  # Django answers SessionInterrupted (400)
        if stored and session.token is None and not emptied:
            raise UpdateError  # deleted meanwhile (a logout elsewhere)

    def _deleted(self, session_key: str | None) -> Session | None:
        """The session delete(session_key) ends: this one, another one, or none."""
        session = self._session_cache
        if session_key is None or session_key == session.token:
            return session
        return handler().session(token=session_key) if session_key else None

    def delete(self, session_key: str | None = None) -> None:
        session = self._deleted(session_key)
        if session is not None:
            session.destroy()

    async def adelete(self, session_key: str | None = None) -> None:
        session = self._deleted(session_key)
        if session is not None:
            await _adrive(session, session._destroy_op())

    def flush(self) -> None:
        """Kill the session and start an empty one (logout); a logout Redis refused raises."""
        self._session_cache._drive(self._flush_op())

    async def aflush(self) -> None:
        await _adrive(self._session_cache, self._flush_op())

    def _flush_op(self) -> SessionOp[None]:
        self.accessed = True
        try:
            yield from self._session_cache._destroy_op()
        finally:
            self._session_cache = handler().session()

    def cycle_key(self) -> None:
        """A new key for the same data, copied inside Redis."""
        self._session.regenerate()

    async def acycle_key(self) -> None:
        session = self._session_cache
        await _adrive(session, session._regenerate_op())

    @classmethod
    def clear_expired(cls) -> None:
        handler().manager.wipe()

    @classmethod
    async def aclear_expired(cls) -> None:
        manager = async_manager()
        if manager is None:
            await sync_to_async(cls.clear_expired)()
        else:
            await manager.wipe()

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
