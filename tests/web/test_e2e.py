"""End to end (issue 4, point 8): the demo app in SessionMiddleware behind a real HTTP server on
loopback, driven by browsers that are cookie jars (``http.cookiejar`` + ``urllib.request``)."""

from __future__ import annotations

import re
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest

from redis_sessions import core
from redis_sessions.demo import make_app, serving

APP = "e2eapp"


class Jar:
    """A browser: a cookie jar, a User-Agent, the last page."""

    def __init__(self, base: str, agent: str) -> None:
        self.base = base.rstrip("/")
        self.agent = agent
        self.jar = CookieJar()
        self.opener = build_opener(HTTPCookieProcessor(self.jar))
        self.page = ""

    def open(self, path: str, form: dict[str, str] | None = None) -> int:
        data = None if form is None else urlencode(form).encode()
        request = Request(self.base + path, data, headers={"User-Agent": self.agent})
        try:
            with self.opener.open(request, timeout=10) as response:
                self.page = response.read().decode()
                return response.status
        except HTTPError as exc:
            self.page = exc.read().decode()
            return exc.code

    def post(self, path: str, **form: str) -> int:
        token = re.search(r'name="csrf" value="([^"]+)"', self.page)
        if token and path != "/login":
            form.setdefault("csrf", token.group(1))
        return self.open(path, form)

    @property
    def user(self) -> str:
        return re.search(r'<main class="rs-devices" data-user="([^"]*)">', self.page).group(1)

    @property
    def rows(self) -> list[tuple[str, str]]:
        return re.findall(r'<li class="rs-device[^"]*" data-session="([0-9a-f]+)" '
                          r'data-this="([01])">', self.page)

    @property
    def cookie(self):
        return next((c for c in self.jar if c.name == APP), None)


@pytest.fixture
def site(rs):
    with serving(make_app(rs, APP)) as base:
        yield base


def test_two_browsers_one_user_logout_one_then_all(site, rs):
    laptop, phone, other = (Jar(site, agent) for agent in (
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
        "curl/8.5.0"))

    assert laptop.open("/") == 200 and laptop.user == "" and laptop.cookie is None
    for browser in (laptop, phone):
        assert browser.post("/login", user="alice") == 200 and browser.user == "alice"
        cookie = browser.cookie
        assert core.is_token(cookie.value) and cookie.has_nonstandard_attr("HttpOnly")
    assert other.post("/login", user="bob") == 200
    assert laptop.cookie.value != phone.cookie.value
    assert {s["token"] for s in rs.soid(APP, "alice")} == {laptop.cookie.value, phone.cookie.value}

    # both devices listed, with browser, IP and this-device marker
    assert laptop.open("/") == 200
    assert sorted(this for _, this in laptop.rows) == ["0", "1"]
    assert "Firefox 120 on Linux" in laptop.page and "Mobile Safari on iOS 17" in laptop.page
    assert "127.0.0.1" in laptop.page and "This device</span>" in laptop.page
    assert "<strong>2</strong>users active" in laptop.page
    # page views are session writes: the page after login, and two more
    laptop.open("/")
    assert rs.get(APP, laptop.cookie.value)["d"]["visits"] == 3
    assert "<strong>3</strong>page views in this session" in laptop.page

    # log the phone out from the laptop: the phone becomes anonymous, its cookie expires
    handles = {r["current"]: r["handle"] for r in rs.devices(APP, "alice", laptop.cookie.value)}
    assert (handles[False], "0") in laptop.rows
    assert laptop.post("/kill", device=handles[False]) == 200
    assert laptop.user == "alice" and laptop.rows == [(handles[True], "1")]
    assert phone.open("/") == 200 and phone.user == "" and phone.cookie is None
    assert "You were logged out on this device" in phone.page
    assert len(rs.soid(APP, "bob")) == 1

    # log out everywhere: every alice browser is anonymous, bob is untouched
    assert phone.post("/login", user="alice") == 200
    assert laptop.open("/") == 200 and len(laptop.rows) == 2
    assert laptop.post("/logout-all") == 200 and laptop.user == "alice"  # asks first
    assert laptop.post("/logout-all", confirm="yes") == 200
    assert laptop.user == "" and laptop.cookie is None
    assert phone.open("/") == 200 and phone.user == ""
    assert rs.soid(APP, "alice") == []
    assert other.open("/") == 200 and other.user == "bob"

    # and a plain logout of one device
    assert other.post("/logout") == 200 and other.user == "" and rs.soid(APP, "bob") == []
