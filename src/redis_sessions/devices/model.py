"""``Device``: one signed-in session of a user as the "your devices" pages show it.

A device is a user session (Node's layout) seen through what it recorded at sign-in: its handle,
its User-Agent and sign-in time (stored in the session's hash where Node never looks), its IP and
last activity (Node's own fields). The manager gives plain records (``RedisSessions.devices``);
this module makes them typed, immutable and sorted, once for every framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .agents import Kind, describe

__all__ = ["Device", "from_records"]


def _moment(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with "Z", as JavaScript's toISOString and pydantic write it."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Device:
    """One of a user's signed-in sessions.

    ``handle`` names it in forms and URLs: opaque, stable for the session's life, and useless
    for authentication (a random value recorded at sign-in, or for a session signed in without
    one a digest of its token; never the token, nor anything it can be worked back from).
    ``current`` is True for the session of the request that asked. ``label``, ``browser``,
    ``os`` and ``kind`` come from the User-Agent (``agents.describe``); ``signed_in`` and
    ``last_active`` are aware UTC datetimes (``signed_in`` None when unknown).
    """

    handle: str
    current: bool
    label: str
    browser: str | None
    os: str | None
    kind: Kind
    ip: str | None
    user_agent: str | None
    signed_in: datetime | None
    last_active: datetime

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Device:
        """The Device of one record of ``RedisSessions.devices``."""
        agent = describe(record["user_agent"])
        last_active = _moment(record["last_active"])
        assert last_active is not None
        signed_in = _moment(record["signed_in"])
        if signed_in is not None and signed_in > last_active:
            # a Node token's time comes from the clock of the process that made it, the last
            # activity from Redis's: never show a sign-in after the last activity
            signed_in = last_active
        return cls(handle=record["handle"], current=bool(record["current"]), label=agent.label,
                   browser=agent.browser, os=agent.os, kind=agent.kind, ip=record["ip"],
                   user_agent=record["user_agent"], signed_in=signed_in,
                   last_active=last_active)

    def as_json(self) -> dict[str, Any]:
        """The device as a JSON object (the pages' JSON form); datetimes in ISO 8601."""
        return {
            "handle": self.handle, "current": self.current, "label": self.label,
            "browser": self.browser, "os": self.os, "kind": self.kind, "ip": self.ip,
            "user_agent": self.user_agent,
            "signed_in": None if self.signed_in is None else _iso(self.signed_in),
            "last_active": _iso(self.last_active),
        }


def _order(device: Device) -> tuple[bool, float, float]:
    signed_in = device.signed_in.timestamp() if device.signed_in else 0.0
    return (not device.current, -device.last_active.timestamp(), -signed_in)


def from_records(records: Iterable[Mapping[str, Any]]) -> list[Device]:
    """Devices of the manager's records, as every page lists them: the current one first, then
    the most recently active."""
    return sorted((Device.from_record(r) for r in records), key=_order)
