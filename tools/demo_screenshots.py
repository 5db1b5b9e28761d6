#!/usr/bin/env python3
"""Screenshots of the demo and of the devices page in a real headless Chromium, and a check that
they fit a phone.

Starts the demo (on the embedded Valkey server, or on ``--redis-url`` in a throwaway namespace),
logs one user id in from two browsers (two WebDriver sessions, so two cookie jars) plus two more
devices signed in through the manager (a tablet, and a session as Node makes it), and saves the
logged-in page at each ``--widths`` (390 and 1280 px by default) into OUT as ``demo-W.png``.
When Flask is installed it does the same for the devices page of the Flask blueprint
(``redis_sessions.devices.flask``, the same page as the Django app's) as ``devices-W.png``.
For each width it prints what JavaScript measures: the page's width against the viewport (which
a phone widens, zooming out, for a page wider than its screen), and whether every button is on
screen. Exit status 1 when a page overflows horizontally or a button is out of reach, 2 when
Chromium or chromedriver cannot be started.

Not part of CI (CI has no Chromium). Needs Debian's ``chromium`` and ``chromium-driver``
(``apt-get install -y chromium chromium-driver``); it speaks WebDriver to chromedriver with the
standard library only, and never downloads a browser. Usage::

    python tools/demo_screenshots.py OUT [--redis-url URL] [--widths 390,1280]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

from redis_sessions import RedisSessions
from redis_sessions.demo import make_app, serving
from redis_sessions.embedded import EmbeddedServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE_WIDTH = 600  # below this a width is emulated as a phone (mobile viewport, touch)
HEIGHT = 844
APP = "demo"
# the browsers' User-Agents: real ones, as the devices list names them
LAPTOP_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
                "Gecko) Chrome/131.0.0.0 Safari/537.36")
PHONE_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
TABLET_AGENT = ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/131.0.0.0 Safari/537.36")
# a long User-Agent without spaces: the worst case for a row's width
LONG_AGENT = ("ExampleKioskBrowser/12.3.4-build.567890+sha.0123456789abcdef0123456789abcdef"
              "(KioskOS;arm64;rv:128.0)")
DEVICES = 5  # the two browsers, a tablet, a kiosk and a session made as Node makes it

MEASURE = """
const page = document.documentElement;
const buttons = [...document.querySelectorAll(".rs-devices button")]
  .map(b => b.getBoundingClientRect());
return {
  viewport: window.innerWidth,
  page: page.scrollWidth,
  buttons: buttons.length,
  buttons_off_screen: buttons.filter(r => r.left < 0 || r.right > window.innerWidth).length,
  devices: document.querySelectorAll("li.rs-device").length,
  height: Math.max(page.scrollHeight, document.body.scrollHeight),
};
"""


class WebDriver:
    """The few W3C WebDriver calls this needs, over HTTP to a chromedriver."""

    def __init__(self, driver_url: str, user_agent: str | None = None) -> None:
        self.driver_url = driver_url
        args = [*CHROMIUM_FLAGS, f"--window-size=1280,{HEIGHT}"]
        if user_agent:
            args.append(f"--user-agent={user_agent}")
        caps = {"browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        reply = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = reply["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = Request(self.driver_url + path, data=data, method=method,
                          headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def cdp(self, command: str, **params: Any) -> Any:
        return self.call("POST", "/goog/cdp/execute", {"cmd": command, "params": params})

    def go(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def script(self, source: str) -> Any:
        return self.call("POST", "/execute/sync", {"script": source, "args": []})

    def element(self, css: str) -> str:
        """The reference of the first element ``css`` matches (a dict of one W3C-named key)."""
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def emulate(self, width: int) -> None:
        """A viewport ``width`` px wide; a phone's (the meta viewport applies) when narrow."""
        mobile = width < PHONE_WIDTH
        self.cdp("Emulation.setDeviceMetricsOverride", width=width, height=HEIGHT,
                 deviceScaleFactor=1, mobile=mobile)
        self.cdp("Emulation.setTouchEmulationEnabled", enabled=mobile)

    def screenshot(self, path: Path, height: int) -> None:
        """The whole page, not only the part in the viewport."""
        width = self.script("return window.innerWidth;")
        shot = self.cdp("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))

    def quit(self) -> None:
        with contextlib.suppress(OSError):
            self._call("DELETE", f"/session/{self.session}")


@contextlib.contextmanager
def chromedriver() -> Iterator[str]:
    """A chromedriver on a free local port, stopped afterwards; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(URLError, OSError):
                with urlopen(url + "/status", timeout=2) as response:
                    if json.load(response)["value"].get("ready"):
                        break
            time.sleep(0.1)
        else:
            raise RuntimeError("chromedriver did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def redis_sessions(redis_url: str | None) -> Iterator[RedisSessions]:
    """A manager on ``redis_url`` (a fresh namespace, emptied afterwards) or on an embedded
    Valkey server."""
    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(EmbeddedServer()).url
            namespace = "rs"
        else:
            namespace = "rsshots" + secrets.token_hex(4)
        sessions = stack.enter_context(RedisSessions(redis_url, namespace=namespace, wipe=0))
        stack.callback(sessions.killall, APP)
        print(f"sessions in {redis_url}, namespace {namespace}")
        yield sessions


def more_devices(sessions: RedisSessions, user: str) -> None:
    """The user's other devices, signed in through the manager, one as Node would make it, and
    each made to look older (its sign-in and last activity moved back, as if time had passed:
    the pages then show what they show on a real account)."""
    for ip, agent, signed_in, active in (("198.51.100.23", TABLET_AGENT, 3 * 86400, 2 * 3600),
                                         ("203.0.113.54", LONG_AGENT, 9 * 86400, 4 * 86400),
                                         ("192.0.2.140", None, 20 * 86400, 26 * 60)):
        if agent is None:
            token = sessions.create(APP, user, ip)  # Node's create: an unknown device
        else:
            token = sessions.upgrade(APP, None, user, ip, user_agent=agent)["token"]
        key = sessions.keys.session_prefix(APP) + token  # type: ignore[union-attr]
        now = int(sessions.client.time()[0])
        sessions.client.hset(key, mapping={"la": now - active, "si": now - signed_in,
                                           "ttl": 30 * 86400})


def flask_devices_app(sessions: RedisSessions) -> Any:
    """A Flask app with the devices blueprint; POST /login?user=ID signs in (no password)."""
    import flask

    from redis_sessions.devices.flask import devices_blueprint
    from redis_sessions.flask import RedisSessionInterface

    app = flask.Flask("devices-screenshots")
    app.secret_key = secrets.token_hex(16)
    app.session_interface = RedisSessionInterface(app_name=APP, sessions=sessions)

    @app.get("/login")
    def login() -> Any:
        flask.session.upgrade(flask.request.args["user"])  # type: ignore[attr-defined]
        return flask.redirect("/account/devices/")

    app.register_blueprint(devices_blueprint, url_prefix="/account/devices")
    return app


def log_in(browser: WebDriver, site: str, user: str) -> None:
    browser.go(site)
    field = browser.element("input[name=user]")
    browser.call("POST", f"/element/{field}/value", {"text": user})
    browser.call("POST", f"/element/{browser.element('form button')}/click", {})
    for _ in range(50):  # the click returns before the next page may have loaded
        shown = browser.script("const m = document.querySelector('main'); "
                               "return m ? m.dataset.user : '';")
        if shown == user:
            break
        time.sleep(0.1)
    if shown != user:
        raise RuntimeError(f"logging in as {user!r} showed user {shown!r}")


def measure(browser: WebDriver, url: str, width: int, path: Path) -> bool:
    """Load the page at ``width``, save its screenshot, print the measures; True when it fits."""
    browser.emulate(width)
    browser.go(url)
    m = browser.script(MEASURE)
    browser.screenshot(path, m["height"])
    # a phone lays a page wider than its screen out wider (innerWidth grows) and zooms out
    fits = m["page"] <= m["viewport"] == width and m["buttons_off_screen"] == 0
    print(f"{width:>5} px screen: viewport {m['viewport']} px, page {m['page']} px, "
          f"{m['devices']} devices, {m['buttons'] - m['buttons_off_screen']}/{m['buttons']} "
          f"buttons on screen: {'fits' if fits else 'OVERFLOWS'} -> {path}")
    return fits and m["devices"] == DEVICES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--redis-url", help="a Redis to use (default: the embedded server)")
    parser.add_argument("--widths", default="390,1280", help="viewport widths, px (390,1280)")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    user = "alice-" + secrets.token_hex(2)
    ok = True
    with contextlib.ExitStack() as stack:
        try:
            driver = stack.enter_context(chromedriver())
            laptop = WebDriver(driver, user_agent=LAPTOP_AGENT)
            stack.callback(laptop.quit)
            phone = WebDriver(driver, user_agent=PHONE_AGENT)
            stack.callback(phone.quit)
        except (OSError, RuntimeError, KeyError) as exc:
            print(f"cannot start Chromium through chromedriver: {exc}", file=sys.stderr)
            return 2
        sessions = stack.enter_context(redis_sessions(args.redis_url))
        site = stack.enter_context(serving(make_app(sessions, APP)))
        for browser in (laptop, phone):
            log_in(browser, site, user)
        more_devices(sessions, user)
        print(f"the demo: logged in as {user} from two browsers on {site}")
        for width in widths:
            ok = measure(laptop, site, width, args.out / f"demo-{width}.png") and ok
        try:
            app = flask_devices_app(sessions)
        except ImportError:
            print("Flask is not installed: no screenshot of the devices page")
            return 0 if ok else 1
        sessions.killsoid(APP, user)
        pages = stack.enter_context(serving(app))
        for browser in (laptop, phone):
            browser.go(f"{pages}login?user={user}")
        more_devices(sessions, user)
        print(f"the devices page (Flask blueprint): {pages}account/devices/")
        for width in widths:
            ok = measure(laptop, f"{pages}account/devices/", width,
                         args.out / f"devices-{width}.png") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
