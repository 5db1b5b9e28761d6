"""The admin CLI (issue 4, point 10) against a real Redis: every command, --json, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import redis_sessions
from redis_sessions.cli import main

APP = "cliapp"
CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def cli(redis_url, namespace, capsys):
    """``cli("ls", APP, ...)`` -> (exit status, stdout, stderr), on the test Redis and namespace."""

    def run(*args: str, url: str | None = None):
        code = main([*args, "--redis-url", url or redis_url, "--namespace", namespace])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def users(rs):
    """alice on two devices and bob on one; returns their tokens."""
    return {
        "alice": [rs.create(APP, "alice", "10.0.0.1", d={"ua": "laptop"}),
                  rs.create(APP, "alice", "10.0.0.2")],
        "bob": [rs.create(APP, "bob", "10.0.0.3")],
    }


def _age(redis_client, namespace: str, token: str, user: str, seconds: int) -> None:
    """Move a session's last activity back in time, as if it had been idle that long."""
    redis_client.hincrby(f"{namespace}:{APP}:{token}", "la", -seconds)
    redis_client.zincrby(f"{namespace}:SESSIONS", -seconds, f"{APP}:{token}:{user}")
    redis_client.zincrby(f"{namespace}:{APP}:_sessions", -seconds, f"{token}:{user}")


# -- ls -------------------------------------------------------------------------------------------


def test_ls_lists_the_app_sessions_as_a_table(cli, users):
    code, out, err = cli("ls", APP, "--show-tokens")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["TOKEN", "USER", "IP", "IDLE", "TTL", "READS", "WRITES", "DATA",
                                "KEYS"]
    for token in users["alice"] + users["bob"]:
        assert token in out
    assert "10.0.0.3" in out and lines[-1] == f"3 sessions of {APP} active in the last 600s"


def test_ls_shows_token_prefixes_unless_asked(cli, users):
    """A token is a live credential: a listing shows its first 8 characters by default."""
    tokens = users["alice"] + users["bob"]
    code, out, _ = cli("ls", APP)
    assert code == 0
    for token in tokens:
        assert f"{token[:8]}..." in out and token[8:20] not in out
    code, out, _ = cli("ls", APP, "--user", "alice", "--json")
    listed = json.loads(out)["sessions"]
    assert sorted(s["token_prefix"] for s in listed) == sorted(t[:8] for t in users["alice"])
    assert all("token" not in s for s in listed)
    assert not any(t[8:20] in out for t in tokens)


def test_ls_json(cli, users):
    code, out, _ = cli("ls", APP, "--json", "--show-tokens")
    assert code == 0
    result = json.loads(out)
    assert result["app"] == APP
    by_token = {s["token"]: s for s in result["sessions"]}
    assert set(by_token) == set(users["alice"] + users["bob"])
    first = by_token[users["alice"][0]]
    assert first["id"] == "alice" and first["ip"] == "10.0.0.1" and first["d"] == {"ua": "laptop"}
    assert first["ttl"] == 7200 and first["r"] == 1 and first["w"] == 1 and first["idle"] >= 0


def test_ls_user_lists_every_session_of_the_id(cli, users):
    code, out, _ = cli("ls", APP, "--user", "alice", "--show-tokens")
    assert code == 0
    assert all(t in out for t in users["alice"]) and users["bob"][0] not in out
    assert out.splitlines()[-1] == f"2 sessions of user 'alice' in {APP}"
    code, out, _ = cli("ls", APP, "--user", "alice", "--json", "--show-tokens")
    assert {s["token"] for s in json.loads(out)["sessions"]} == set(users["alice"])


def test_ls_since_filters_by_idle_time(cli, users, redis_client, namespace):
    idle = users["alice"][1]
    _age(redis_client, namespace, idle, "alice", 1200)
    _, out, _ = cli("ls", APP, "--since", "10m", "--json", "--show-tokens")
    assert idle not in {s["token"] for s in json.loads(out)["sessions"]}
    _, out, _ = cli("ls", APP, "--since", "1h", "--json", "--show-tokens")
    assert idle in {s["token"] for s in json.loads(out)["sessions"]}
    _, out, _ = cli("ls", APP, "--user", "alice", "--since", "600", "--json", "--show-tokens")
    assert [s["token"] for s in json.loads(out)["sessions"]] == [users["alice"][0]]


def test_ls_with_nothing_to_show_says_where_it_looked(cli, redis_url, namespace):
    asked = f"(asked {redis_url}, namespace {namespace})"
    assert cli("ls", APP) == (0, f"no sessions of {APP} active in the last 600s {asked}\n", "")
    assert cli("ls", APP, "--user", "nobody") == (
        0, f"no sessions of user 'nobody' in {APP} {asked}\n", "")
    assert cli("activity", APP) == (0, f"0 users of {APP} active in the last 600s {asked}\n", "")
    assert json.loads(cli("ls", APP, "--user", "nobody", "--json")[1]) == {"app": APP,
                                                                          "sessions": []}


# -- activity, kill, kill-user, kill-app, wipe ---------------------------------------------------


def test_activity_counts_distinct_users(cli, users):
    assert cli("activity", APP) == (0, f"2 users of {APP} active in the last 600s\n", "")
    code, out, _ = cli("activity", APP, "--since", "2h", "--json")
    assert code == 0 and json.loads(out) == {"app": APP, "since": 7200, "users": 2}


def test_kill_ends_one_session(cli, users, rs):
    token = users["alice"][0]
    assert cli("kill", APP, token) == (0, "killed 1 session\n", "")
    assert rs.get(APP, token) is None and len(rs.soid(APP, "alice")) == 1
    assert cli("kill", APP, token) == (0, "no such session (nothing killed)\n", "")
    code, out, _ = cli("kill", APP, users["alice"][1], "--json")
    assert code == 0 and json.loads(out) == {"app": APP, "killed": 1}


def test_kill_user_ends_every_session_of_the_id(cli, users, rs):
    assert cli("kill-user", APP, "alice") == (0, "killed 2 sessions of user 'alice'\n", "")
    assert rs.soid(APP, "alice") == [] and len(rs.soid(APP, "bob")) == 1
    code, out, _ = cli("kill-user", APP, "bob", "--json")
    assert json.loads(out) == {"app": APP, "id": "bob", "killed": 1}


def test_kill_app_ends_every_session_of_the_app(cli, users, rs):
    other = rs.create("otherapp", "alice", "10.0.0.9")
    assert cli("kill-app", APP) == (0, f"killed 3 sessions of {APP}\n", "")
    assert rs.soapp(APP, 600) == [] and rs.get("otherapp", other) is not None
    code, out, _ = cli("kill-app", "otherapp", "--json")
    assert code == 0 and json.loads(out) == {"app": "otherapp", "killed": 1}


def test_wipe_removes_expired_sessions(cli, rs, redis_client, namespace):
    dead = rs.create(APP, "carol", "10.0.0.4", ttl=60)
    alive = rs.create(APP, "carol", "10.0.0.5", ttl=60)
    _age(redis_client, namespace, dead, "carol", 100)
    assert cli("wipe") == (0, "removed 1 expired session\n", "")
    assert [s["token"] for s in rs.soid(APP, "carol")] == [alive]
    code, out, _ = cli("wipe", "--json")
    assert code == 0 and json.loads(out) == {"removed": 0}


# -- options --------------------------------------------------------------------------------------


def test_common_options_also_go_before_the_command(redis_url, namespace, users, capsys):
    assert main(["--redis-url", redis_url, "--namespace", namespace, "activity", APP]) == 0
    assert capsys.readouterr().out.startswith("2 users")


def test_redis_url_defaults_to_the_environment(redis_url, namespace, users, capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["activity", APP, "--namespace", namespace, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == 2


def test_namespaces_are_kept_apart(cli, users, redis_url, capsys):
    assert main(["ls", APP, "--redis-url", redis_url, "--namespace", "rstest-empty-ns"]) == 0
    assert capsys.readouterr().out.startswith("no sessions")


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "kill-user" in capsys.readouterr().out
    assert main(["ls", "--help"]) == 0
    assert "--since" in capsys.readouterr().out


# -- bad input: exit 2, one line on stderr --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "x"], "APP must be 3 to 20 letters, digits, '_' or '-': 'x'"),
        (["ls", "bad app!"], "APP must be 3 to 20 letters, digits, '_' or '-': 'bad app!'"),
        (["kill", APP, "not-a-token"], "TOKEN must be 64 letters and digits: 'not-a-token'"),
        (["kill-user", APP, "a\nb"], "ID must be non-empty and hold no line break: 'a\\nb'"),
        (["kill-user", APP, ""], "ID must be non-empty and hold no line break: ''"),
        (["ls", APP, "--user", "a\rb"], "--user must be non-empty and hold no line break"),
        (["activity", APP, "--since", "5"], "--since must be at least 10 seconds"),
        (["ls", APP, "--since", "9s"], "--since must be at least 10 seconds"),
        (["ls", APP, "--since", "3651d"], "--since must be at most 315360000 seconds (3650d)"),
        (["ls", APP, "--since", "soon"], "argument --since: not a duration: 'soon'"),
        (["ls"], "the following arguments are required: APP"),
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["kill", APP], "the following arguments are required: TOKEN"),
    ],
)
def test_bad_input_exits_2_with_a_message(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.startswith("redis-sessions: error: ") and message in err
    assert "Traceback" not in err
    for internal in ("deltaTime", "invalidFormat", "invalidValue", "missingParameter"):
        assert internal not in err


def test_a_long_user_id_is_looked_up_as_the_manager_does(cli):
    assert cli("ls", APP, "--user", "x" * 200)[0] == 0  # Node lets such ids through


def test_bad_namespace_and_url_exit_2(redis_url, capsys):
    assert main(["ls", APP, "--redis-url", redis_url, "--namespace", "a:b"]) == 2
    assert "--namespace must be non-empty and hold no ':': 'a:b'" in capsys.readouterr().err
    assert main(["ls", APP, "--redis-url", redis_url, "--namespace", "a:b", "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["code"] == "badInput"
    assert main(["ls", APP, "--redis-url", "http://u:pw@127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err
    assert "--redis-url http://u:***@127.0.0.1:6379: " in err and "redis://" in err
    assert "pw" not in err


# -- --json: errors are a JSON object on stderr too -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "status", "code", "message"),
    [
        (["ls", "x", "--json"], 2, "badInput", "APP must be 3 to 20 letters"),
        (["activity", APP, "--since", "5", "--json"], 2, "badInput",
         "--since must be at least 10 seconds"),
        (["ls", APP, "--since", "soon", "--json"], 2, "badInput", "not a duration: 'soon'"),
        (["frobnicate", "--json"], 2, "badInput", "invalid choice: 'frobnicate'"),
        (["kill", APP, "--json"], 2, "badInput", "the following arguments are required: TOKEN"),
    ],
)
def test_json_bad_input_is_a_json_error(cli, args, status, code, message):
    exit_status, out, err = cli(*args)
    assert (exit_status, out) == (status, "")
    assert err.count("\n") == 1
    error = json.loads(err)
    assert set(error) == {"error", "code"} and error["code"] == code
    assert message in error["error"]


def test_json_no_redis_is_a_json_error(cli):
    code, out, err = cli("ls", APP, "--json", url="redis://admin:s3cret@127.0.0.1:1/0")
    assert (code, out) == (3, "")
    error = json.loads(err)
    assert error["code"] == "redisUnreachable" and "s3cret" not in err
    assert error["error"].startswith("cannot reach Redis at redis://admin:***@127.0.0.1:1/0")


def test_without_json_errors_stay_text(cli):
    code, _, err = cli("ls", "x")
    assert code == 2 and err.startswith("redis-sessions: error: ")


# -- no Redis: exit 3, quickly ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [["ls", APP], ["activity", APP], ["kill-user", APP, "x"],
                                     ["kill-app", APP], ["wipe"]])
def test_no_redis_exits_3_quickly(cli, command):
    started = time.monotonic()
    code, out, err = cli(*command, url=CLOSED)
    assert code == 3 and out == ""
    assert err.startswith(f"redis-sessions: error: cannot reach Redis at {CLOSED}")
    assert "Traceback" not in err
    assert time.monotonic() - started < 5


def test_password_is_not_printed(capsys):
    assert main(["ls", APP, "--redis-url", "redis://admin:s3cret@127.0.0.1:1/0"]) == 3
    err = capsys.readouterr().err
    assert "s3cret" not in err and "admin:***@127.0.0.1:1" in err


# -- a real process --------------------------------------------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m redis_sessions.cli ARGS`` with this test run's copy of the package."""
    source = str(Path(redis_sessions.__file__).parent.parent)
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [source, environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "redis_sessions.cli", *args], env=environ,
                          capture_output=True, text=True, timeout=60)


def test_as_a_process(redis_url, namespace, users):
    result = _run("ls", APP, "--user", "alice", "--json", "--show-tokens", "--redis-url",
                  redis_url, "--namespace", namespace)
    assert result.returncode == 0, result.stderr
    assert {s["token"] for s in json.loads(result.stdout)["sessions"]} == set(users["alice"])
    result = _run("kill-user", APP, "bob", "--namespace", namespace, env={"REDIS_URL": redis_url})
    assert (result.returncode, result.stdout) == (0, "killed 1 session of user 'bob'\n")


def test_as_a_process_errors_are_one_line_without_traceback():
    result = _run("ls", APP, "--redis-url", CLOSED)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cannot reach Redis" in result.stderr
    result = _run("ls", "x", "--redis-url", CLOSED)
    assert result.returncode == 2 and "APP must be 3 to 20 letters" in result.stderr
    result = _run("ls", "x", "--json", "--redis-url", CLOSED)
    assert result.returncode == 2 and json.loads(result.stderr)["code"] == "badInput"
    assert "Traceback" not in result.stderr


# -- the edges a new user met (issue 20) -----------------------------------------------------------


def test_ls_json_that_fails_part_way_writes_nothing(cli, rs, redis_client, namespace):
    """A listing that breaks after its first page leaves stdout empty, not half a JSON."""
    tokens = [rs.create(APP, f"user{i}", "10.0.0.1") for i in range(130)]
    oldest = tokens[0]
    _age(redis_client, namespace, oldest, "user0", 100)  # last in the newest-first listing
    redis_client.delete(f"{namespace}:{APP}:{oldest}")
    redis_client.set(f"{namespace}:{APP}:{oldest}", "not a session hash")  # page 2 fails
    code, out, err = cli("ls", APP, "--json")
    assert code == 1 and out == ""
    assert json.loads(err)["code"] == "failed"


def test_an_http_port_is_not_a_redis_server(cli):
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # not on the stderr the test reads
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{server.server_address[1]}/0"
    try:
        code, out, err = cli("ls", APP, url=url)
        assert (code, out) == (3, "")
        assert f"{url} is not a Redis server" in err and "HTTP port" in err
        code, _, err = cli("check", "--json", url=url)
        assert code == 3 and json.loads(err)["code"] == "redisUnreachable"
    finally:
        server.shutdown()
        server.server_close()


def test_layout_cluster_on_a_plain_server_is_bad_input(cli, redis_url):
    code, out, err = cli("ls", APP, "--layout", "cluster")
    assert (code, out) == (2, "")
    assert "--layout cluster, but --redis-url" in err and "is not a Redis Cluster node" in err


@pytest.mark.parametrize("args", [["ls", APP, "--since", "-10m"], ["ls", APP, "--since=-10m"],
                                  ["activity", APP, "--since", "-600"]])
def test_a_negative_since_says_so(cli, args):
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert "durations count back from now and take no sign" in err and "expected one" not in err


@pytest.mark.parametrize("args", [["frobnicate", "--json"], ["ls", "--json"]])
def test_json_errors_carry_no_usage_text(cli, args):
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    error = json.loads(err)
    assert "--help" not in error["error"] and "\n" not in error["error"]
    code, _, err = cli(*[a for a in args if a != "--json"])
    assert code == 2 and "(see: redis-sessions" in err  # text mode keeps the hint


def test_a_server_that_never_answers_fails_after_the_socket_timeout(cli):
    """A port that accepts connections (the kernel's backlog) but never replies: exit 3 after
    the manager's 5 s socket timeout, once (no retry doubling it)."""
    import socket

    from redis_sessions.manager import SOCKET_TIMEOUT

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    try:
        started = time.monotonic()
        code, out, err = cli("ls", APP, url=url)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert (code, out) == (3, "") and "cannot reach Redis" in err
    assert SOCKET_TIMEOUT == 5.0
    assert SOCKET_TIMEOUT - 0.5 < elapsed < 2 * SOCKET_TIMEOUT - 1, elapsed
