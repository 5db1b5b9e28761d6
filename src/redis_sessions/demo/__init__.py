"""The demo of ``redis-sessions demo``: log in as a user id, see and end that id's sessions.

``app`` is the WSGI app (inside ``SessionMiddleware``), ``server`` serves it (with the embedded
Valkey server when no Redis URL is given), ``check`` walks through it over HTTP.
"""

from .app import make_app
from .server import run, serving

__all__ = ["make_app", "run", "serving"]
