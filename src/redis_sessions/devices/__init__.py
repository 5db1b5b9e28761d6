"""The user's devices: every signed-in session of a user, listed with log-out controls.

What a device is (its handle, label, kind and times) is decided here once, without any web
framework: ``Device`` (model.py) and the User-Agent parsing (agents.py); ``pages`` holds what
every front door's views share. The front doors add only their views, templates and signals:
``redis_sessions.devices.django`` (an app), ``redis_sessions.devices.flask`` (a blueprint) and
``redis_sessions.devices.asgi`` (Starlette routes and a FastAPI router).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .agents import KINDS, Agent, Kind, describe
from .model import Device, from_records

if TYPE_CHECKING:
    from ..manager import RedisSessions

__all__ = ["Device", "Agent", "Kind", "KINDS", "describe", "from_records", "user_devices"]


def user_devices(sessions: RedisSessions, app: str, user_id: str | int) -> list[Device]:
    """The devices of any user, from a blocking ``RedisSessions`` (for admin pages); none is
    ``current``."""
    return from_records(sessions.devices(app, user_id))
