"""User-Agent strings of real browsers (desktop and mobile, as each sends them today) and what
the devices pages must make of them; shared by the devices tests of every front door."""

from __future__ import annotations

from typing import NamedTuple


class Agent(NamedTuple):
    user_agent: str
    label: str
    kind: str


FIREFOX_LINUX = Agent(
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Firefox 133 on Linux", "desktop")
CHROME_WINDOWS = Agent(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Windows", "desktop")
EDGE_WINDOWS = Agent(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge 131 on Windows", "desktop")
SAFARI_MAC = Agent(
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15", "Safari 18 on macOS", "desktop")
SAFARI_IPHONE = Agent(
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari 17 on iOS 17", "mobile")
CHROME_ANDROID = Agent(
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome Mobile 131 on Android 14", "mobile")
SAFARI_IPAD = Agent(
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari 17 on iPadOS 17", "tablet")
CHROME_ANDROID_TABLET = Agent(
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Android 14", "tablet")
GOOGLEBOT = Agent(
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Googlebot 2", "bot")
CURL = Agent("curl/8.5.0", "curl 8", "other")

BROWSERS = [FIREFOX_LINUX, CHROME_WINDOWS, EDGE_WINDOWS, SAFARI_MAC, SAFARI_IPHONE,
            CHROME_ANDROID, SAFARI_IPAD, CHROME_ANDROID_TABLET]
ALL = [*BROWSERS, GOOGLEBOT, CURL]
