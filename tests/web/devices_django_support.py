"""The Django devices pages walked by browsers with real User-Agents: Django's test Client (CSRF
checks on) or requests over HTTP, behind one small interface, so one scenario runs on both."""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from ..agents import Agent

LIST = "/account/devices/"
END = "/account/devices/end/"
END_OTHERS = "/account/devices/end-others/"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ROW = re.compile(r'<li class="rs-device( rs-current)?" data-handle="([0-9a-f]{24})">')


class Reply(NamedTuple):
    status: int
    text: str
    location: str

    def json(self) -> Any:
        return json.loads(self.text)


class ClientBrowser:
    """Django's test Client with CSRF checks on and a browser's User-Agent."""

    def __init__(self, agent: Agent) -> None:
        from django.test import Client

        self.agent = agent
        self.client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=agent.user_agent)

    def _reply(self, response: Any) -> Reply:
        return Reply(response.status_code, response.content.decode(),
                     response.headers.get("Location", ""))

    def get(self, path: str, accept: str | None = None) -> Reply:
        extra = {"HTTP_ACCEPT": accept} if accept else {}
        return self._reply(self.client.get(path, **extra))

    def post(self, path: str, data: dict | None = None, *, json_body: Any = None,
             accept: str | None = None, csrf_header: str | None = None) -> Reply:
        extra: dict[str, str] = {}
        if accept:
            extra["HTTP_ACCEPT"] = accept
        if csrf_header:
            extra["HTTP_X_CSRFTOKEN"] = csrf_header
        if json_body is not None:
            return self._reply(self.client.post(path, json.dumps(json_body),
                                                content_type="application/json", **extra))
        return self._reply(self.client.post(path, data or {}, **extra))

    @property
    def session_key(self) -> str | None:
        from django.conf import settings

        cookie = self.client.cookies.get(settings.SESSION_COOKIE_NAME)
        return cookie.value or None if cookie else None


class HttpBrowser:
    """requests over real HTTP: a cookie jar and a browser's User-Agent."""

    def __init__(self, base: str, agent: Agent) -> None:
        import requests

        self.base = base
        self.agent = agent
        self.http = requests.Session()
        self.http.headers["User-Agent"] = agent.user_agent

    def _reply(self, response: Any) -> Reply:
        location = response.headers.get("Location", "")
        if location.startswith(self.base):
            location = location[len(self.base):]
        return Reply(response.status_code, response.text, location)

    def get(self, path: str, accept: str | None = None) -> Reply:
        headers = {"Accept": accept} if accept else {}
        return self._reply(self.http.get(self.base + path, headers=headers, timeout=10,
                                         allow_redirects=False))

    def post(self, path: str, data: dict | None = None, *, json_body: Any = None,
             accept: str | None = None, csrf_header: str | None = None) -> Reply:
        headers = {"Referer": self.base + LIST}  # Django checks it on HTTPS only; as browsers do
        if accept:
            headers["Accept"] = accept
        if csrf_header:
            headers["X-CSRFToken"] = csrf_header
        return self._reply(self.http.post(self.base + path, data=data, json=json_body,
                                          headers=headers, timeout=10, allow_redirects=False))

    @property
    def session_key(self) -> str | None:
        return self.http.cookies.get("sessionid")


def csrf(text: str) -> str:
    found = CSRF_FIELD.search(text)
    assert found, "no CSRF token in the page"
    return found.group(1)


def rows(text: str) -> list[tuple[str, bool]]:
    """(handle, this device) of each row of the devices page."""
    return [(handle, bool(current)) for current, handle in ROW.findall(text)]


def log_in(browser: Any, username: str, password: str) -> None:
    page = browser.get("/login/")
    reply = browser.post("/login/", {"username": username, "password": password,
                                     "csrfmiddlewaretoken": csrf(page.text)})
    assert reply.status == 302, reply


def page(browser: Any) -> Reply:
    reply = browser.get(LIST)
    assert reply.status == 200, reply
    return reply


def devices_scenario(new_browser: Any, user: Any, password: str, rs: Any, app: str) -> None:
    """Three real browsers of one user and a Node-made session: the list (HTML and JSON), ending
    one device, refusals (CSRF, another user's handle, signed out), ending the others, and this
    device; no session token ever shows."""
    from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE

    name = user.get_username()
    laptop, phone, tablet = (new_browser(a) for a in (FIREFOX_LINUX, SAFARI_IPHONE,
                                                      CHROME_ANDROID))
    signed_out = new_browser(FIREFOX_LINUX)
    for browser in (laptop, phone, tablet):
        log_in(browser, name, password)
    node_token = rs.create(app, str(user.pk), "198.51.100.4")  # what a Node app writes
    tokens = [b.session_key for b in (laptop, phone, tablet)] + [node_token]
    assert all(tokens)

    def no_token_in(text: str) -> None:
        for token in tokens:
            assert token not in text and token[:20] not in text

    # the list: four devices, this one first and marked, labelled from real User-Agents
    html = page(laptop).text
    no_token_in(html)
    listed = rows(html)
    assert len(listed) == 4 and listed[0][1] and sum(current for _, current in listed) == 1
    for label in ("Firefox 133 on Linux", "Mobile Safari 17 on iOS 17",
                  "Chrome Mobile 131 on Android 14", "Unknown device"):
        assert label in html
    assert html.count('name="csrfmiddlewaretoken"') == 5  # each row's form and "all others"
    # the same as JSON
    body = laptop.get(LIST, accept="application/json")
    assert body.status == 200
    no_token_in(body.text)
    devices = body.json()["devices"]
    assert [d["current"] for d in devices] == [True, False, False, False]
    assert devices[0]["label"] == "Firefox 133 on Linux" and devices[0]["kind"] == "desktop"
    assert {d["kind"] for d in devices} == {"desktop", "mobile", "other"}
    assert all(d["last_active"].endswith("Z") for d in devices)
    phone_handle = next(d["handle"] for d in devices if d["user_agent"]
                        == SAFARI_IPHONE.user_agent)
    node_handle = next(d["handle"] for d in devices if d["user_agent"] is None)

    # signed out: the login page, 401 as JSON, and a POST ends nothing
    assert signed_out.get(LIST).location.startswith("/login/?next=/account/devices/")
    assert signed_out.get(LIST, accept="application/json").status == 401
    signed_out.get("/login/")  # a CSRF token of its own, for the POST to get past CSRF
    reply = signed_out.post(END, {"handle": phone_handle})
    assert reply.status in (302, 403) and page(phone).status == 200

    # CSRF enforced: a form without the token is refused, the device stays
    assert laptop.post(END, {"handle": phone_handle}).status == 403
    assert laptop.post(END_OTHERS, {}).status == 403
    assert len(rows(page(phone).text)) == 4

    # end the phone from the laptop: redirect back to the list, with the message
    token = csrf(page(laptop).text)
    reply = laptop.post(END, {"handle": phone_handle, "csrfmiddlewaretoken": token})
    assert (reply.status, reply.location) == (302, LIST)
    html = page(laptop).text
    assert "Logged out Mobile Safari 17 on iOS 17." in html and len(rows(html)) == 3
    assert phone.get(LIST).location.startswith("/login/")  # the phone is signed out
    assert phone.get("/whoami/").text == "anonymous"
    # the same handle again, or another user's, or nonsense: "not signed in any more"
    for handle in (phone_handle, "f" * 24, "<script>"):
        reply = laptop.post(END, {"handle": handle, "csrfmiddlewaretoken": token})
        assert (reply.status, reply.location) == (302, LIST)
        assert "That device is not signed in any more." in page(laptop).text
    # JSON: the Node-made session, with the CSRF token in a header
    reply = laptop.post(END, json_body={"handle": node_handle}, accept="application/json",
                        csrf_header=token)
    assert reply.status == 200 and reply.json()["ended"] == 1
    assert rs.get(app, node_token) is None
    assert len(reply.json()["devices"]) == 2
    reply = laptop.post(END, json_body={"handle": node_handle}, accept="application/json",
                        csrf_header=token)
    assert reply.status == 404 and reply.json()["ended"] == 0

    # log out all the others: the laptop stays, the tablet is out
    log_in(phone, name, password)
    reply = laptop.post(END_OTHERS, {"csrfmiddlewaretoken": token})
    assert (reply.status, reply.location) == (302, LIST)
    html = page(laptop).text
    assert "Logged out 2 other devices." in html and len(rows(html)) == 1
    assert tablet.get(LIST).location.startswith("/login/")
    assert phone.get("/whoami/").text == "anonymous"

    # this device: a full logout
    [(own, current)] = rows(page(laptop).text)
    assert current
    reply = laptop.post(END, {"handle": own, "csrfmiddlewaretoken": csrf(page(laptop).text)})
    assert reply.status == 302
    assert laptop.get("/whoami/").text.startswith("anonymous")
    assert rs.soid(app, str(user.pk)) == []
