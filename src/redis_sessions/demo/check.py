"""A scripted walk through the running demo over real HTTP, as two browsers with cookie jars.

``demo --check`` runs it: log in as one user id from two browsers, see both sessions listed, log
the second browser out from the first, then log out everywhere. Any surprise raises
``CheckFailed`` with what was expected.
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

_USER = re.compile(r'<main data-user="([^"]*)">')
_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)">')
_ROW = re.compile(r'<tr data-session="([0-9a-f]+)" data-this="([01])">')


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
        """(handle, this device) of each session the last page lists."""
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
    laptop = Browser(base_url, "redis-sessions-check/1 (laptop)")
    phone = Browser(base_url, "redis-sessions-check/1 (phone)")

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
            "both sessions listed, one marked as this device", laptop)
    report("ok  both sessions listed, this device marked")

    other = next(h for h, this in listed if not this)
    laptop.post("/kill", session=other)
    _expect(laptop.user == user and len(laptop.sessions) == 1, "one session left", laptop)
    phone.get("/")
    _expect(phone.user == "" and phone.cookie(app_name) is None,
            "the phone is logged out and its cookie gone", phone)
    report("ok  logged the phone out from the laptop; the phone is anonymous")

    phone.login(user)
    laptop.get("/")
    laptop.post("/logout-all")
    _expect(laptop.user == "" and laptop.cookie(app_name) is None, "the laptop is logged out",
            laptop)
    phone.get("/")
    _expect(phone.user == "", "log out on all devices reached the phone", phone)
    report("ok  logged out on all devices")
