"""connect-redis-sessions' mocha suite through the ASGI middleware: Starlette's and FastAPI's test
clients, and real HTTP to uvicorn (the ``browsers`` fixture of tests/asgi/conftest.py)."""

from __future__ import annotations

from ..web.test_scenario import test_the_connect_redis_sessions_scenario

__all__ = ["test_the_connect_redis_sessions_scenario"]
