"""Flask support: ``app.session_interface = RedisSessionInterface(app_name="myapp", ...)``.

``flask.session`` is then a redis-sessions ``Session`` (upgrade, destroy, soid, ... included).
It is saved in Flask's ``save_session`` step, before the response leaves; a view that raised saves
nothing it did not save explicitly. Changes made while a streamed body iterates are not saved
(use ``session.save()`` there, or the WSGI ``SessionMiddleware``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response, got_request_exception
from flask.sessions import SessionInterface

from .session import ENVIRON_KEY, Session, SessionHandler

__all__ = ["RedisSessionInterface"]


def _on_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
    from flask import request

    session = request.environ.get(ENVIRON_KEY)
    if session is not None:
        session.failed = True


class RedisSessionInterface(SessionInterface):
    """A Flask session interface over redis-sessions; takes ``SessionMiddleware``'s options
    (``app_name``, ``sessions``/``redis``, ``ttl``, ``cookie``, ``secret_keys``, ``trust_proxy``,
    ``on_backend_error``, ``lazy``). Flask's SESSION_COOKIE_* settings are not used."""

    def __init__(self, **options: Any) -> None:
        self.handler = SessionHandler(**options)
        got_request_exception.connect(_on_exception)

    # our Session is a MutableMapping like Flask's SessionMixin, not a subclass of it
    def open_session(self, app: Flask, request: Request) -> Session | None:  # type: ignore[override]
        # None (no app name, or outside the cookie path): Flask uses its null session
        return self.handler.open(request.environ)

    def save_session(self, app: Flask, session: Session, response: Response) -> None:  # type: ignore[override]
        op = session.finish()
        if op:
            response.headers.add("Set-Cookie", self.handler.cookie_header(session, op))
