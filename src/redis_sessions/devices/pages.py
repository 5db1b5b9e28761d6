"""What the "your devices" pages of every framework share: the JSON form, the feedback
wording, the Accept rule, relative times and the icon of each kind. No framework is imported.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from .agents import Kind
from .model import Device

__all__ = ["payload", "wants_json", "ago", "icon", "stylesheet", "ended_message",
           "others_message", "NOT_FOUND", "SIGNED_OUT", "TEMPLATE"]

#: the page's template name in every framework (override it by that path)
TEMPLATE = "redis_sessions/devices.html"
#: the feedback when the device to end is not (or no longer) one of the user's
NOT_FOUND = "That device is not signed in any more."
#: the answer when the request's own session is not a signed-in user's
SIGNED_OUT = "Log in to see your devices."


@functools.lru_cache(maxsize=1)
def stylesheet() -> str:
    """The pages' CSS (devices.css, scoped to ``.rs-devices``), for a ``<style>`` element."""
    return resources.files(__package__).joinpath("devices.css").read_text("utf-8")


def payload(devices: Sequence[Device], **extra: Any) -> dict[str, Any]:
    """The JSON body of the pages: ``{"devices": [...], **extra}``."""
    return {"devices": [device.as_json() for device in devices], **extra}


def _quality(part: str) -> tuple[str, float]:
    media, *params = (p.strip() for p in part.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), q


def wants_json(accept: str | None) -> bool:
    """Whether an Accept header asks for JSON before HTML (``Accept: application/json``)."""
    if not accept:
        return False
    json_q = html_q = 0.0
    for part in accept.split(","):
        media, q = _quality(part)
        if media == "application/json":
            json_q = max(json_q, q)
        elif media in ("text/html", "application/xhtml+xml", "*/*", "text/*"):
            html_q = max(html_q, q)
    return json_q > 0 and json_q >= html_q


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """"just now", "5 minutes ago", "3 hours ago", "2 days ago", then the date; "" for None."""
    if moment is None:
        return ""
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    for unit, size, below in (("minute", 60, 3600), ("hour", 3600, 86400),
                              ("day", 86400, 30 * 86400)):
        if seconds < below:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return f"{moment.day} {moment:%b %Y}"


# one 24 px line icon per kind (stroke: currentColor), drawn with SVG paths only
_ICONS: dict[str, str] = {
    "desktop": '<rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/>',
    "mobile": '<rect x="7" y="2.5" width="10" height="19" rx="2"/><path d="M11 18.5h2"/>',
    "tablet": '<rect x="4" y="2.5" width="16" height="19" rx="2"/><path d="M11 18.5h2"/>',
    "bot": '<rect x="5" y="8" width="14" height="11" rx="2"/><path d="M12 4v4M9 13h.01M15 13h.01'
           'M2 13h3M19 13h3"/>',
    "other": '<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3c2.5 2.7 3.8 5.7 3.8 9s-1.3'
             ' 6.3-3.8 9c-2.5-2.7-3.8-5.7-3.8-9s1.3-6.3 3.8-9z"/>',
}


def icon(kind: Kind | str) -> str:
    """The inline SVG of a device kind (trusted markup: mark it safe in templates)."""
    paths = _ICONS.get(kind, _ICONS["other"])
    return ('<svg class="rs-icon" viewBox="0 0 24 24" width="24" height="24" fill="none" '
            'stroke="currentColor" stroke-width="1.6" stroke-linecap="round" '
            f'stroke-linejoin="round" aria-hidden="true">{paths}</svg>')


def ended_message(device: Device) -> str:
    """The feedback after ending one device."""
    if device.current:
        return "You logged out on this device."
    return f"Logged out {device.label}."


def others_message(count: int) -> str:
    """The feedback after ending every other device."""
    if count == 0:
        return "No other device was signed in."
    return f"Logged out {count} other device{'' if count == 1 else 's'}."
