"""``redis-sessions check`` against real servers configured each way: a line per finding, exit 0
when nothing is a problem, 1 with a line per problem (issue 20)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from redis_sessions.check import PROBE_APP
from redis_sessions.cli import main
from redis_sessions.embedded import free_port
from redis_sessions.eviction import eviction_risks
from redis_sessions.scripts import LIBRARY_NAME

NO_FUNCTIONS = ("--rename-command", "FCALL", "", "--rename-command", "FUNCTION", "")


@pytest.fixture
def check(capsys):
    """``check(url, *args)`` -> (exit status, {check name: [(status, line)]}, stdout)."""

    def run(url: str, *args: str):
        code = main(["check", "--redis-url", url, *args])
        out, err = capsys.readouterr()
        assert err == ""
        found: dict[str, list[tuple[str, str]]] = {}
        for line in out.splitlines()[1:-1]:
            status, name, message = line.split(None, 2)
            found.setdefault(name, []).append((status, message))
        return code, found, out

    return run


def statuses(found: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    return {name: entries[0][0] for name, entries in found.items()}


def problems(found: dict[str, list[tuple[str, str]]]) -> list[str]:
    return [name for name, entries in found.items() for status, _ in entries if status == "problem"]


def test_a_fresh_server_passes_and_gets_the_library(check, server_factory):
    server = server_factory()
    code, found, out = check(server.url)
    assert code == 0, out
    assert statuses(found) == {"version": "ok", "eviction": "ok", "persistence": "warning",
                               "layout": "ok", "replicas": "ok", "clock": "ok",
                               "functions": "ok", "operations": "ok", "cache": "ok"}
    assert found["functions"][0][1] == f"the library {LIBRARY_NAME} was missing and is loaded now"
    assert "no persistence: a restart loses every session" in found["persistence"][0][1]
    assert out.splitlines()[-1] == "0 problems, 1 warning"
    client = redis.Redis.from_url(server.url)
    assert client.keys("*") == []  # the probe session was killed, its indexes with it
    assert check(server.url)[1]["functions"][0][1] == f"the library {LIBRARY_NAME} is loaded"
    client.close()


def test_a_server_without_functions(check, server_factory):
    code, found, out = check(server_factory(*NO_FUNCTIONS).url)
    assert code == 1 and problems(found) == ["functions"]
    message = found["functions"][0][1]
    assert "Redis >= 7.0 or Valkey >= 7.2" in message and "#!lua" not in out
    assert "operations" not in found  # nothing is probed on a server that cannot run it
    assert out.splitlines()[-1].startswith("1 problem, ")


def test_a_user_who_may_not_load_the_library_then_an_admin_loads_it(check, server_factory):
    server = server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">secret", "~rs:*", "&rs:cache",
                          "-@all", "+@read", "+@write", "+fcall", "+@pubsub", "+@connection",
                          "+time", "-function")
    app_url = server.url.replace("redis://", "redis://app:secret@")
    code, found, _ = check(app_url)
    assert code == 1 and problems(found) == ["functions"]
    assert "may not run FUNCTION LOAD" in found["functions"][0][1]
    assert statuses(found)["server"] == "warning"  # INFO is not the app user's
    assert check(server.url)[0] == 0  # the admin's check loads the library
    code, found, _ = check(app_url)
    assert code == 0 and statuses(found)["operations"] == "ok"
    admin.close()


def test_a_user_who_may_not_publish(check, server_factory):
    server = server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">secret", "~rs:*", "resetchannels",
                          "-@all", "+@read", "+@write", "+@scripting", "+@pubsub",
                          "+@connection", "+time")
    code, found, _ = check(server.url.replace("redis://", "redis://app:secret@"))
    assert code == 1 and problems(found) == ["operations"]
    assert "may not publish on the session channel" in found["operations"][0][1]
    assert statuses(found)["cache"] == "warning"
    admin.close()


@pytest.mark.parametrize(("policy", "status", "code"), [("allkeys-lru", "problem", 1),
                                                        ("volatile-ttl", "warning", 0),
                                                        ("noeviction", "ok", 0)])
def test_eviction_policy(check, server_factory, policy, status, code):
    """allkeys-* is a problem (the app-wide indexes can lose entries), volatile-* a warning
    (supported: sessions may end early), noeviction fine; the lines are the managers' own
    assessment (redis_sessions.eviction), the one the managers log at their first call."""
    server = server_factory("--maxmemory", "100mb", "--maxmemory-policy", policy)
    result, found, _ = check(server.url)
    assert result == code
    assert found["eviction"][0][0] == status  # the worst first
    client = redis.Redis.from_url(server.url)
    assert found["eviction"] == [tuple(risk) for risk in eviction_risks(client.info("memory"))]
    client.close()
    if status != "ok":
        assert all(f"maxmemory-policy {policy}" in message for _, message in found["eviction"])
    if status == "problem":
        assert "killall" in found["eviction"][0][1] and "use noeviction" in found["eviction"][0][1]


def test_persistence_with_an_append_only_file(check, server_factory):
    code, found, _ = check(server_factory("--appendonly", "yes").url)
    assert code == 0 and found["persistence"] == [
        ("ok", "appendonly yes: sessions and logouts survive a restart")]
    found = check(server_factory("--save", "3600 1").url)[1]
    assert found["persistence"][0][0] == "warning"
    assert "brings back the sessions logged out since the last snapshot" in found["persistence"][0][1]


def test_replicas_for_durability(check, server_factory):
    master = server_factory()
    code, found, _ = check(master.url, "--replicas", "1")
    assert code == 1 and problems(found) == ["replicas"]
    assert "0 replica(s) connected, fewer than --replicas 1" in found["replicas"][0][1]
    replica = server_factory("--replicaof", "127.0.0.1", str(master.port))
    client = redis.Redis.from_url(master.url)
    deadline = time.monotonic() + 10
    while client.info("replication")["connected_slaves"] < 1:
        assert time.monotonic() < deadline, "the replica did not connect"
        time.sleep(0.05)
    client.close()
    code, found, _ = check(master.url, "--replicas", "1")
    assert code == 0 and found["replicas"] == [("ok", "1 replica(s) connected")]
    code, found, _ = check(replica.url)
    assert code == 1 and "role" in problems(found)
    assert "this server is a replica" in found["role"][0][1]


def _one_node_cluster(server_factory):
    server = server_factory("--cluster-enabled", "yes", "--cluster-port", str(free_port()))
    node = redis.Redis.from_url(server.url)
    node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.monotonic() + 10
    while b"cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
        assert time.monotonic() < deadline, "the one-node cluster did not come up"
        time.sleep(0.05)
    node.close()
    return server


def test_cluster_mode_against_the_layout(check, server_factory, capsys):
    cluster = _one_node_cluster(server_factory)
    code, found, _ = check(cluster.url)
    assert code == 1 and problems(found) == ["layout"]
    assert "this Redis is a cluster node" in found["layout"][0][1]
    code, found, out = check(cluster.url, "--layout", "cluster")
    assert code == 0, out
    assert statuses(found)["layout"] == "ok" and statuses(found)["operations"] == "ok"
    plain = server_factory()
    code, found, _ = check(plain.url, "--layout", "cluster")
    assert code == 1 and problems(found) == ["layout"]
    # the admin commands refuse a layout that does not match: bad input, exit 2
    assert main(["ls", PROBE_APP, "--redis-url", cluster.url]) == 2
    assert "is a Redis Cluster node: add --layout cluster" in capsys.readouterr().err
    assert main(["ls", PROBE_APP, "--redis-url", cluster.url, "--layout", "cluster"]) == 0


def test_json_report(server_factory, capsys):
    server = server_factory("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    assert main(["check", "--redis-url", server.url, "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert err == "" and report["ok"] is False and report["layout"] == "node"
    by_check: dict[str, list[str]] = {}
    for finding in report["checks"]:
        by_check.setdefault(finding["check"], []).append(finding["status"])
    assert by_check["eviction"] == ["problem", "warning"]  # allkeys-lru: indexes, sessions
    assert by_check["version"] == ["ok"]


def test_unreachable_is_exit_3(capsys):
    assert main(["check", "--redis-url", "redis://127.0.0.1:1/0"]) == 3
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in capsys.readouterr().err
