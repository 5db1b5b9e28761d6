"""Django support: ``"redis_sessions.django.SessionMiddleware"`` in ``MIDDLEWARE``.

Configured by ``settings.REDIS_SESSIONS``, a dict of ``SessionMiddleware``'s options (``app_name``
required; a callable app_name gets ``request.META``). Sets ``request.session`` to a redis-sessions
``Session`` (it replaces ``django.contrib.sessions``, whose middleware should then be left out;
``django.contrib.auth``'s login()/logout() need that one, so log in with ``session.upgrade()``).
A view that raised saves nothing it did not save explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from .cookies import cookie_value
from .session import COOKIE_SET, SessionHandler

__all__ = ["SessionMiddleware"]


class SessionMiddleware:
    """Puts a redis-sessions ``Session`` in ``request.session``; saves it before the response
    leaves and sets or expires the cookie."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        options = getattr(settings, "REDIS_SESSIONS", None)
        if not isinstance(options, dict) or "app_name" not in options:
            raise ImproperlyConfigured(
                "redis_sessions.django.SessionMiddleware needs settings.REDIS_SESSIONS = "
                "{'app_name': ..., ...}"
            )
        self.get_response = get_response
        self.handler = SessionHandler(**options)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = self.handler.open(request.META)
        if session is None:
            return self.get_response(request)
        request.session = session  # type: ignore[assignment]
        response = self.get_response(request)
        op = session.finish()
        if op:
            cookie = self.handler.cookie
            if op == COOKIE_SET and session._token is not None:
                response.set_cookie(
                    cookie.name(session.app), cookie_value(session._token, self.handler._keys),
                    max_age=cookie.max_age, path=cookie.path, domain=cookie.domain,
                    secure=cookie.secure, httponly=cookie.httponly, samesite=cookie.samesite,
                )
            else:
                response.delete_cookie(
                    cookie.name(session.app), path=cookie.path, domain=cookie.domain,
                    samesite=cookie.samesite,
                )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        session = getattr(request, "session", None)
        if session is not None and hasattr(session, "failed"):
            session.failed = True
        return None
