#!/usr/bin/env python3
"""Screenshots of the demo in a real headless Chromium, and a check that it fits a phone.

Starts the demo (on the embedded Valkey server, or on ``--redis-url`` in a throwaway namespace),
logs one user id in from two browsers (two WebDriver sessions, so two cookie jars), and saves the
logged-in page with its two sessions at each ``--widths`` (390 and 1280 px by default) into OUT.
For each width it prints what JavaScript measures: the page's and the table's widths against the
viewport (which a phone widens, zooming out, for a page wider than its screen), and whether every
"Log out" button is on screen. Exit status 1 when a page overflows
horizontally or a button is out of reach, 2 when Chromium or chromedriver cannot be started.

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
# the second browser: a long User-Agent without spaces, the worst case for the table's width
LONG_AGENT = ("ExampleKioskBrowser/12.3.4-build.567890+sha.0123456789abcdef0123456789abcdef"
              "(KioskOS;arm64;rv:128.0)")

MEASURE = """
const page = document.documentElement;
const table = document.querySelector("table");
const box = document.querySelector(".sessions");
const buttons = [...document.querySelectorAll("td button")].map(b => b.getBoundingClientRect());
return {
  viewport: window.innerWidth,
  page: page.scrollWidth,
  table: table ? Math.ceil(table.getBoundingClientRect().width) : null,
  box_scrolls: box ? box.scrollWidth > box.clientWidth : null,
  buttons: buttons.length,
  buttons_off_screen: buttons.filter(r => r.left < 0 || r.right > window.innerWidth).length,
  sessions: document.querySelectorAll("tr[data-session]").length,
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
def demo_site(redis_url: str | None) -> Iterator[str]:
    """The demo app served on a free port; its Redis is ``redis_url`` (a fresh namespace,
    emptied afterwards) or an embedded Valkey server."""
    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(EmbeddedServer()).url
            namespace = "rs"
        else:
            namespace = "rsshots" + secrets.token_hex(4)
        sessions = stack.enter_context(RedisSessions(redis_url, namespace=namespace, wipe=0))
        stack.callback(sessions.killall, APP)
        print(f"demo sessions in {redis_url}, namespace {namespace}")
        yield stack.enter_context(serving(make_app(sessions, APP)))


def log_in(browser: WebDriver, site: str, user: str) -> None:
    browser.go(site)
    field = browser.element("input[name=user]")
    browser.call("POST", f"/element/{field}/value", {"text": user})
    browser.call("POST", f"/element/{browser.element('form button')}/click", {})
    shown = browser.script("return document.querySelector('main').dataset.user;")
    if shown != user:
        raise RuntimeError(f"logging in as {user!r} showed user {shown!r}")


def measure(browser: WebDriver, site: str, width: int, out: Path) -> bool:
    """Load the page at ``width``, save its screenshot, print the measures; True when it fits."""
    browser.emulate(width)
    browser.go(site)
    m = browser.script(MEASURE)
    path = out / f"demo-{width}.png"
    browser.screenshot(path, m["height"])
    # a phone lays a page wider than its screen out wider (innerWidth grows) and zooms out
    fits = m["page"] <= m["viewport"] == width and m["buttons_off_screen"] == 0
    print(f"{width:>5} px screen: viewport {m['viewport']} px, page {m['page']} px, "
          f"table {m['table']} px"
          f"{' (scrolls in its box)' if m['box_scrolls'] else ''}, {m['sessions']} sessions, "
          f"{m['buttons'] - m['buttons_off_screen']}/{m['buttons']} Log out buttons on screen: "
          f"{'fits' if fits else 'OVERFLOWS'} -> {path}")
    return fits and m["sessions"] == 2


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
            laptop = WebDriver(driver)
            stack.callback(laptop.quit)
            phone = WebDriver(driver, user_agent=LONG_AGENT)
            stack.callback(phone.quit)
        except (OSError, RuntimeError, KeyError) as exc:
            print(f"cannot start Chromium through chromedriver: {exc}", file=sys.stderr)
            return 2
        site = stack.enter_context(demo_site(args.redis_url))
        for browser in (laptop, phone):
            log_in(browser, site, user)
        print(f"logged in as {user} from two browsers on {site}")
        for width in widths:
            ok = measure(laptop, site, width, args.out) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
