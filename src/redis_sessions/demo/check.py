"""A scripted walk through the running demo over real HTTP, as two browsers with cookie jars.

``demo --check`` runs it: log in as one user id from two browsers, see both devices listed, log
the second browser out from the first (which is told so on its next visit), log out the other
devices, then log out everywhere (after the confirmation). Any surprise raises ``CheckFailed``
with what was expected.
"""

from __future__ import annotations

import re
from html import unescape
import secrets
from collections.abc import Callable
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

__all__ = ["Browser", "CheckFailed", "run_check"]

_USER = re.compile(r'<main class="rs-devices" data-user="([^"]*)">')
_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)">')
_ROW = re.compile(r'<li class="rs-device[^"]*" data-session="([0-9a-f]+)" data-this="([01])">')
#: what a browser logged out from elsewhere is told on its next visit
ENDED_NOTE = "You were logged out on this device"


class CheckFailed(AssertionError):
    """The demo did not behave as the check expected."""


class Browser:
    """A client with its own cookie jar and User-Agent; remembers the last page it got."""

    def __init__(self, base_url: str, user_agent: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.timeout = timeout
        self.jar = CookieJar()
        self.opener = build_opener(HTTPCookieProcessor(self.jar))
        self.status = 0
        self.html = ""

    def request(self, path: str, fields: dict[str, str] | None = None) -> str:
        """GET ``path``, or POST ``fields`` to it (following the redirect); returns the page."""
        data = None if fields is None else urlencode(fields).encode()
        request = Request(self.base_url + path, data=data, headers={"User-Agent": self.user_agent})
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                self.status, self.html = response.status, response.read().decode()
        except HTTPError as exc:
            self.status, self.html = exc.code, exc.read().decode()
        return self.html

    def get(self, path: str = "/") -> str:
        return self.request(path)

    def post(self, path: str, **fields: str) -> str:
        if path != "/login":
            fields.setdefault("csrf", self.csrf)
        return self.request(path, fields)

    # -- what the last page says ---------------------------------------------------------------

    @property
    def user(self) -> str:
        """The logged-in user id the last page shows ("" for the login page)."""
        match = _USER.search(self.html)
        return unescape(match.group(1)) if match else ""

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.html)
        return unescape(match.group(1)) if match else ""

    @property
    def sessions(self) -> list[tuple[str, bool]]:
        """(handle, this device) of each device the last page lists."""
        return [(h, this == "1") for h, this in _ROW.findall(self.html)]

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def login(self, user: str) -> str:
        return self.post("/login", user=user)


def _expect(condition: bool, what: str, browser: Browser) -> None:
    if not condition:
        raise CheckFailed(f"{what} (HTTP {browser.status}; page user {browser.user!r}; "
                          f"sessions {browser.sessions})")


def run_check(base_url: str, app_name: str, report: Callable[[str], None] = print) -> None:
    """Walk through the demo at ``base_url``; raises ``CheckFailed`` at the first surprise."""
    user = "check-" + secrets.token_hex(4)
    laptop = Browser(base_url, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 "
                     "Firefox/133.0")
    phone = Browser(base_url, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) "
                    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 "
                    "Safari/604.1")

    laptop.get("/")
    _expect(laptop.status == 200 and laptop.user == "", "the first page is the login form", laptop)
    for browser in (laptop, phone):
        browser.login(user)
        _expect(browser.status == 200 and browser.user == user, f"logged in as {user}", browser)
        _expect(browser.cookie(app_name) is not None, f"a cookie named {app_name!r}", browser)
    report(f"ok  logged in as {user} from two browsers")

    laptop.get("/")
    listed = laptop.sessions
    _expect(len(listed) == 2 and sum(this for _, this in listed) == 1,
            "both devices listed, one marked as this device", laptop)
    _expect("Firefox 133 on Linux" in laptop.html and "Mobile Safari 17 on iOS 17"
            in laptop.html, "both devices named from their User-Agents", laptop)
    report("ok  both devices listed, this device marked")

    other = next(h for h, this in listed if not this)
    laptop.post("/kill", device=other)
    _expect(laptop.user == user and len(laptop.sessions) == 1, "one device left", laptop)
    phone.get("/")
    _expect(phone.user == "" and phone.cookie(app_name) is None,
            "the phone is logged out and its cookie gone", phone)
    _expect(ENDED_NOTE in phone.html, "the phone is told it was logged out", phone)
    report("ok  logged the phone out from the laptop; the phone is told so")

    phone.login(user)
    laptop.get("/")
    laptop.post("/logout-others")
    _expect(laptop.user == user and len(laptop.sessions) == 1, "only the laptop left", laptop)
    phone.get("/")
    _expect(phone.user == "", "log out other devices reached the phone", phone)
    report("ok  logged out the other devices")

    phone.login(user)
    laptop.get("/")
    laptop.post("/logout-all")
    _expect(laptop.user == user and "Log out everywhere?" in laptop.html,
            "log out everywhere asks first", laptop)
    laptop.post("/logout-all", confirm="yes")
    _expect(laptop.user == "" and laptop.cookie(app_name) is None, "the laptop is logged out",
            laptop)
    phone.get("/")
    _expect(phone.user == "", "log out everywhere reached the phone", phone)
    report("ok  logged out everywhere, after confirming")
