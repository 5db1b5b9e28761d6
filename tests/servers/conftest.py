"""The servers users run, over real HTTP: gunicorn (tests/web/flask_support.py's helper),
uWSGI and uvicorn as subprocesses on loopback ports, and a crowd of concurrent clients, each a
requests.Session (its own cookie jar) logged in as its own user, each checking that every answer
names its own user and the value it stored last. Marked ``slow`` (tests/conftest.py: SLOW_SUITES;
CI runs it once, in the compiled-core pass): HTTP isolation does not depend on the core."""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from ..web.flask_support import csrf_of, free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
JOIN = 30.0  # seconds a client may take past the crowd's deadline before the test fails


class Server:
    """A server process on a free loopback port, its output in a file (``log()``)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], probe: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = tempfile.TemporaryFile("w+")
        command = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.logfile,
                                        stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONPATH": str(ROOT), **env})
        try:
            wait_for_http(self.process, self.url + probe, name, self.log)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        self.logfile.seek(0)
        return self.logfile.read()

    def stop(self) -> str:
        stop_process(self.process)
        out = self.log()
        self.logfile.close()
        return out


def flask_env(redis_url: str, namespace: str, url: str = "http://localhost") -> dict[str, str]:
    return {"FLASK_TEST_BACKEND": "ours", "FLASK_TEST_REDIS_URL": redis_url,
            "FLASK_TEST_NAMESPACE": namespace, "FLASK_TEST_BASE_URL": url}


def uwsgi(redis_url: str, namespace: str, lazy: bool) -> Server:
    binary = shutil.which("uwsgi") or str(Path(sys.executable).with_name("uwsgi"))
    if not Path(binary).exists():
        reason = "uWSGI is not installed: pip install '.[servers]' (it compiles with a C compiler)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: .ci/run installs it)")
        pytest.skip(reason)
    command = [binary, "--http11-socket", "127.0.0.1:{port}", "--module",
               "tests.servers.flask_wsgi:application", "--master", "--processes", "2",
               "--threads", "4", "--need-app", "--die-on-term", "--disable-logging",
               "--pythonpath", str(ROOT), "--home", sys.prefix]
    if lazy:
        command.append("--lazy-apps")
    return Server("uwsgi" + (" --lazy-apps" if lazy else ""), command,
                  flask_env(redis_url, namespace), "/whoami")


def uvicorn(redis_url: str, namespace: str) -> Server:
    command = [sys.executable, "-m", "uvicorn", "tests.servers.asgi_app:app", "--host",
               "127.0.0.1", "--port", "{port}", "--workers", "2", "--log-level", "warning"]
    return Server("uvicorn --workers 2", command,
                  {"ASGI_TEST_REDIS_URL": redis_url, "ASGI_TEST_NAMESPACE": namespace}, "/")


# -- the crowd -----------------------------------------------------------------------------------


class FlaskFlow:
    """The Flask app: log in through the flask-wtf form, then /mine (?set=VALUE)."""

    @staticmethod
    def login(browser: requests.Session, base: str, uid: str) -> requests.Response:
        page = browser.get(base + "/login", timeout=30)
        if page.status_code != 200 or "csrf:" not in page.text:
            return page
        return browser.post(base + "/login", data={"username": uid, "csrf_token": csrf_of(page.text)},
                            timeout=30)  # redirected to /whoami: the user id

    @staticmethod
    def logged_in_as(answer: requests.Response) -> str:
        return answer.text

    @staticmethod
    def call(browser: requests.Session, base: str, value: str | None) -> requests.Response:
        params = {} if value is None else {"set": value}
        return browser.get(base + "/mine", params=params, allow_redirects=False, timeout=30)

    @staticmethod
    def parse(answer: requests.Response) -> tuple[str | None, str | None, str | None]:
        """(user, owner of the value, value) of an answer."""
        body = answer.json()
        mine = body.get("mine") or {}
        return body.get("user"), mine.get("owner"), mine.get("value")


class AsgiFlow:
    """tests/asgi's routes: ?upgrade=UID logs in, ?save&mine=VALUE writes, ?data reads."""

    @staticmethod
    def login(browser: requests.Session, base: str, uid: str) -> requests.Response:
        return browser.get(base + "/", params={"upgrade": uid}, timeout=30)

    @staticmethod
    def logged_in_as(answer: requests.Response) -> str:
        return answer.text.removeprefix("LOGGED IN - USER: ")

    @staticmethod
    def call(browser: requests.Session, base: str, value: str | None) -> requests.Response:
        params = {"data": ""} if value is None else {"save": "", "mine": value}
        return browser.get(base + "/", params=params, timeout=30)

    @staticmethod
    def parse(answer: requests.Response) -> tuple[str | None, str | None, str | None]:
        first, _, rest = answer.text.partition("\n")
        user = first.removeprefix("USER: ")
        data = json.loads(rest.split(": ", 1)[1]) if ": " in rest else {}
        value = data.get("mine")
        return user, value.split(":", 1)[0] if value else None, value


@dataclass
class Crowd:
    """What a crowd of clients saw."""

    clients: int = 0
    requests: int = 0  # answered (logins included)
    wrong: int = 0  # an answer naming another user, or another value than the client's last
    server_errors: int = 0  # 5xx
    failed: int = 0  # logged out, another status, a connection error
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, text: str) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if sum(line.startswith(kind) for line in self.samples) < 3:
                self.samples.append(f"{kind}: {text}"[:300])

    def line(self, name: str) -> str:
        return (f"{name}: {self.clients} clients, {self.requests} requests, {self.wrong} wrong, "
                f"{self.server_errors} 5xx, {self.failed} failed")


def crowd(base: str, flow, clients: int = 50, seconds: float = 3.0) -> Crowd:
    """``clients`` browsers, each logged in as its own user, reading and writing its own value
    for ``seconds``; every answer is checked."""
    seen = Crowd(clients=clients)
    tag = secrets.token_hex(3)
    deadline = time.monotonic() + seconds
    start = threading.Barrier(clients)

    def login(browser: requests.Session, uid: str) -> bool:
        try:
            answer = flow.login(browser, base, uid)
        except requests.RequestException as exc:
            seen.note("failed", f"{uid}: logging in: {exc}")
            return False
        with seen.lock:
            seen.requests += 1
        who = flow.logged_in_as(answer)
        if who == uid:
            return True
        if answer.status_code >= 500:
            seen.note("server_errors", f"{uid}: logging in: {answer.status_code}")
        elif who.startswith(("user-", "alice", "bob")):
            seen.note("wrong", f"{uid} logged in as {who!r}")
        else:
            seen.note("failed", f"{uid}: logging in: {answer.status_code} "
                                f"{' '.join(who.split())[:120]!r}")
        return False

    def client(i: int) -> None:
        uid, rng = f"user-{i}-{tag}", random.Random(i)
        browser = requests.Session()
        unknown = object()  # after a new login: any value of the client's own is right
        try:
            start.wait(30)
            logged_in, last, n = False, unknown, 0
            while time.monotonic() < deadline:
                if not logged_in:  # (again after a failure: the run goes on)
                    logged_in, last = login(browser, uid), unknown
                    if not logged_in:
                        time.sleep(0.01)
                    continue
                n += 1
                value = f"{uid}:{n}" if rng.random() < 0.3 else None
                try:
                    answer = flow.call(browser, base, value)
                except requests.RequestException as exc:
                    seen.note("failed", f"{uid}: {exc}")
                    continue
                with seen.lock:
                    seen.requests += 1
                if answer.status_code >= 500:
                    seen.note("server_errors", f"{uid}: {answer.status_code} {answer.text[:100]}")
                    continue
                if answer.status_code != 200:
                    seen.note("failed", f"{uid}: {answer.status_code} (logged out?)")
                    logged_in = False
                    continue
                try:
                    user, owner, got = flow.parse(answer)
                except ValueError:
                    seen.note("failed", f"{uid}: unreadable answer {answer.text[:100]!r}")
                    continue
                expected = value if value is not None else last
                if user != uid or (got is not None and owner != uid) or (
                        expected is not unknown and got != expected):
                    want = "any of its own" if expected is unknown else repr(expected)
                    seen.note("wrong", f"{uid} (value {want}) got user {user!r}, value {got!r} "
                                       f"of {owner!r}")
                    last = unknown
                    continue
                last = got
        finally:
            browser.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.1, deadline + JOIN - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        pytest.fail(f"clients still waiting {JOIN} s after the run (the server hangs)")
    return seen
