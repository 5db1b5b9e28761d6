"""The session model's device methods, through the WSGI middleware and werkzeug's test client:
devices(), destroydevice(), destroyothers() and the on_sign_in notice, as every framework gets
them."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from werkzeug.test import Client

from redis_sessions.devices import Device
from redis_sessions.wsgi import SessionMiddleware, get_session

from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE

APP = "sessdev"


def routes(environ, start_response):
    session = get_session(environ)
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "login" in query:
        session.upgrade(query["login"])
        body: object = session.user_id
    elif "end" in query:
        body = session.destroydevice(query["end"])
    elif "others" in query:
        body = session.destroyothers()
    else:
        body = [d.as_json() for d in session.devices()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class Browser:
    """werkzeug's test client (a cookie jar) sending one browser's User-Agent."""

    def __init__(self, app, agent) -> None:
        self.client = Client(app)
        self.headers = {"User-Agent": agent.user_agent}

    def get(self, path: str):
        return self.client.get(path, headers=self.headers)


def browser(app, agent) -> Browser:
    return Browser(app, agent)


def call(client: Browser, query: str = "") -> object:
    return json.loads(client.get("/?" + query).get_data(as_text=True))


def test_devices_and_ending_them_from_the_session(rs) -> None:
    app = SessionMiddleware(routes, app_name=APP, sessions=rs)
    laptop, phone, tablet = (browser(app, a) for a in (FIREFOX_LINUX, SAFARI_IPHONE,
                                                      CHROME_ANDROID))
    visitor = browser(app, FIREFOX_LINUX)
    for client in (laptop, phone, tablet):
        assert call(client, "login=ann") == "ann"
    devices = call(laptop)
    assert [d["label"] for d in devices][0] == "Firefox 133 on Linux" and devices[0]["current"]
    assert len(devices) == 3
    phone_handle = next(d["handle"] for d in devices if d["kind"] == "mobile"
                        and "iOS" in d["label"])
    # an anonymous session has no devices and ends none
    assert call(visitor) == [] and call(visitor, f"end={phone_handle}") == 0
    assert call(visitor, "others") == 0
    assert len(call(phone)) == 3
    # a malformed handle: 0, no error
    assert call(laptop, "end=not-a-handle") == 0
    assert call(laptop, f"end={phone_handle}") == 1
    assert call(phone) == []  # the phone's next request: signed out
    assert call(laptop, "others") == 1
    assert call(tablet) == []
    own = call(laptop)[0]["handle"]
    response = laptop.get(f"/?end={own}")
    assert response.get_data(as_text=True) == "1"
    assert any(h.startswith(f"{APP}=;") for h in response.headers.getlist("Set-Cookie"))
    assert rs.soid(APP, "ann") == []


def test_on_sign_in_gets_the_session_and_its_device(rs, caplog) -> None:
    heard: list[tuple[str | None, Device]] = []
    app = SessionMiddleware(routes, app_name=APP, sessions=rs,
                            on_sign_in=lambda session, device: heard.append((session.user_id,
                                                                             device)))
    call(browser(app, SAFARI_IPHONE), "login=bea")
    [(user, device)] = heard
    assert user == "bea" and device.current and device.label == "Mobile Safari 17 on iOS 17"
    assert device.ip == "unknown" and device.signed_in is not None  # no REMOTE_ADDR here

    def broken(session, device):
        raise RuntimeError("mailer down")

    caplog.set_level(logging.DEBUG, "redis_sessions")
    failing = SessionMiddleware(routes, app_name=APP, sessions=rs, on_sign_in=broken)
    client = browser(failing, FIREFOX_LINUX)
    assert call(client, "login=cy") == "cy"  # the sign-in stands
    assert len(call(client)) == 1
    assert "mailer down" in caplog.text and "on_sign_in failed" in caplog.text


def test_no_device_is_read_at_sign_in_when_nobody_listens(rs, command_counter) -> None:
    app = SessionMiddleware(routes, app_name=APP, sessions=rs)
    call(browser(app, FIREFOX_LINUX), "login=warm")  # the connection and library are ready
    client = browser(app, FIREFOX_LINUX)
    counter = command_counter()
    call(client, "login=dan")
    assert counter.count == 1  # the sign-in's one script, no listing
    listening = SessionMiddleware(routes, app_name=APP, sessions=rs,
                                  on_sign_in=lambda s, d: None)
    client = browser(listening, FIREFOX_LINUX)
    counter = command_counter()
    call(client, "login=dan")
    assert counter.count == 2  # and one read of the new device
