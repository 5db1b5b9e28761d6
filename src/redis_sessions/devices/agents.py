"""What a User-Agent string tells of a device: browser, OS, kind and a label, decided here once
for every page, template and signal.

Parsed by ua-parser 1.x (the ``[devices]`` extra, which the ``flask``, ``django`` and ``asgi``
extras pull in), which uses its compiled resolver ``ua-parser-rs`` when that is installed; without
ua-parser the label is a short form of the raw string and the rest is unknown.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

_parser: Any = None  # the ua_parser module once imported (False: not installed)


def _ua_parser() -> Any:
    """ua-parser, imported on first use (an import of the package stays cheap); None without."""
    global _parser
    if _parser is None:
        try:
            import ua_parser
        except ImportError:
            _parser = False
        else:
            _parser = ua_parser
    return _parser or None

__all__ = ["Agent", "Kind", "KINDS", "describe", "parser_name", "UNKNOWN"]

Kind = Literal["desktop", "mobile", "tablet", "bot", "other"]
KINDS: tuple[Kind, ...] = ("desktop", "mobile", "tablet", "bot", "other")
SHORT_LENGTH = 48  # characters of a raw User-Agent a label keeps when it cannot be parsed

# ua-parser's OS families as people name them; the version is shown for the phone systems,
# where it says something (Windows 11 still calls itself "Windows NT 10.0")
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_VERSIONED_OS = frozenset(("iOS", "Android", "iPadOS"))
_MOBILE_OS = frozenset(("iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS",
                        "Firefox OS", "Symbian OS", "Tizen", "HarmonyOS"))
_DESKTOP_OS = frozenset(("Windows", "Mac OS X", "Linux", "Ubuntu", "Debian", "Fedora",
                         "Red Hat", "SUSE", "openSUSE", "Arch Linux", "Linux Mint", "Gentoo",
                         "Chrome OS", "FreeBSD", "OpenBSD", "NetBSD", "Solaris"))


@dataclass(frozen=True, slots=True)
class Agent:
    """What one User-Agent says: ``label`` ("Firefox 133 on Linux"), ``browser`` ("Firefox 133"),
    ``os`` ("Linux"), ``kind`` (desktop, mobile, tablet, bot or other); None when unknown."""

    label: str
    browser: str | None
    os: str | None
    kind: Kind


#: a session that recorded no User-Agent (Node created it, or it signed in without one)
UNKNOWN = Agent("Unknown device", None, None, "other")


def parser_name() -> str:
    """Which parser ``describe`` uses: "ua-parser (ua-parser-rs)", "ua-parser" or "none"."""
    ua_parser = _ua_parser()
    if ua_parser is None:
        return "none"
    if ua_parser.BestAvailableResolver is not ua_parser.BasicResolver:
        return f"ua-parser ({ua_parser.BestAvailableResolver.__module__.rsplit('.', 1)[-1]})"
    return "ua-parser"


def short(user_agent: str) -> str:
    """The raw string, whitespace collapsed, cut to SHORT_LENGTH characters."""
    text = " ".join(user_agent.split())
    return text if len(text) <= SHORT_LENGTH else text[:SHORT_LENGTH - 1].rstrip() + "\u2026"


def _named(family: str | None, major: str | None) -> str | None:
    if not family or family == "Other":
        return None
    return f"{family} {major}" if major else family


def _system(os: Any, device: Any) -> str | None:
    if os is None or not os.family or os.family == "Other":
        return None
    name = _OS_NAMES.get(os.family, os.family)
    if name == "iOS" and device is not None and device.family == "iPad":
        name = "iPadOS"
    return f"{name} {os.major}" if os.major and os.family in _VERSIONED_OS else name


def _kind(user_agent: str, result: Any) -> Kind:
    device, os = result.device, result.os
    family = device.family if device is not None else ""
    brand = (device.brand or "") if device is not None else ""
    system = os.family if os is not None else ""
    if family == "Spider":
        return "bot"
    if (family == "iPad" or "Tablet" in brand or "Tablet" in family or "Kindle" in family
            or (system == "Android" and "Mobile" not in user_agent)):
        return "tablet"  # Android tablets send no "Mobile" token (Google's own rule)
    if system in _MOBILE_OS or "Mobi" in user_agent:
        return "mobile"
    if system in _DESKTOP_OS:
        return "desktop"
    return "other"


@functools.lru_cache(maxsize=1024)
def describe(user_agent: str | None) -> Agent:
    """The ``Agent`` of a User-Agent string (``UNKNOWN`` for None or "")."""
    if not user_agent:
        return UNKNOWN
    ua_parser = _ua_parser()
    if ua_parser is None:
        return Agent(short(user_agent), None, None, "other")
    result = ua_parser.parse(user_agent)
    agent = result.user_agent
    browser = _named(agent.family, agent.major) if agent is not None else None
    system = _system(result.os, result.device)
    if browser and system:
        label = f"{browser} on {system}"
    elif browser:
        label = browser
    elif system:
        label = f"A browser on {system}"
    else:
        label = short(user_agent)
    return Agent(label, browser, system, _kind(user_agent, result))
