"""Concurrency through the middleware under a real threaded HTTP server on loopback: parallel
requests of one session writing different keys lose nothing; a logout racing with writes leaves
no partial session (no hash, no index entry) behind."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from .conftest import APP


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


@pytest.fixture
def server(make_app) -> Iterator[int]:
    httpd = make_server("127.0.0.1", 0, make_app(), server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def request(port: int, path: str, cookie: str | None = None) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": f"{APP}={cookie}"} if cookie else {})
        response = conn.getresponse()
        body = response.read()
        value = None
        for name, header in response.getheaders():
            if name.lower() == "set-cookie" and header.startswith(APP + "="):
                value = header.split(";", 1)[0][len(APP) + 1 :]
        return response.status, value, body
    finally:
        conn.close()


def run_threads(count: int, target) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def wrapped(i: int) -> None:
        try:
            barrier.wait(10)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_parallel_writes_to_different_keys_lose_nothing(server, rs):
    status, token, _ = request(server, "/login?user=parallel")
    assert status == 200 and token
    threads, per_thread = 16, 25

    def writer(i: int) -> None:
        for j in range(per_thread):
            status, _, _ = request(server, f"/set?t{i}_{j}=v{j}", token)
            assert status == 200

    assert run_threads(threads, writer) == []
    data = rs.get(APP, token)["d"]
    assert data == {f"t{i}_{j}": f"v{j}" for i in range(threads) for j in range(per_thread)}
    assert rs.get(APP, token)["w"] >= threads * per_thread


def test_parallel_writes_with_reads_and_overwrites(server, rs):
    """Each thread owns a key and overwrites it with increasing values while others do the same
    and read: every key ends at its thread's last value."""
    _, token, _ = request(server, "/login?user=overwrite")
    threads, rounds = 12, 30

    def writer(i: int) -> None:
        for j in range(rounds):
            assert request(server, f"/set?own{i}={j}", token)[0] == 200
            assert request(server, "/", token)[0] == 200

    assert run_threads(threads, writer) == []
    assert rs.get(APP, token)["d"] == {f"own{i}": str(rounds - 1) for i in range(threads)}


def _leftovers(redis_client, namespace: str, token: str, user: str) -> list[str]:
    found = [k.decode() for k in redis_client.scan_iter(match=f"{namespace}:*{token}*", count=1000)]
    if redis_client.exists(f"{namespace}:{APP}:us:{user}"):
        found.append("user index")
    if redis_client.zscore(f"{namespace}:{APP}:_sessions", f"{token}:{user}") is not None:
        found.append("_sessions member")
    for member in redis_client.zrange(f"{namespace}:SESSIONS", 0, -1):
        if token.encode() in member:
            found.append(f"SESSIONS member {member!r}")
    return found


@pytest.mark.parametrize("what", ["logout", "logout-all"])
def test_logout_racing_with_writes_leaves_nothing(server, rs, redis_client, namespace, what):
    for attempt in range(10):
        user = f"racer{attempt}"
        _, token, _ = request(server, f"/login?user={user}")
        _, other, _ = request(server, f"/login?user={user}")  # a second device of the same user
        writers = 8
        statuses: list[int] = []

        def work(i: int) -> None:
            if i == writers:  # the logout thread, started with the writers
                for _ in range(2):
                    request(server, "/", token)
                assert request(server, f"/{what}", token)[0] == 200
                return
            for j in range(15):
                status, cookie, _ = request(server, f"/set?w{i}_{j}=x", token if i % 2 else other)
                statuses.append(status)

        assert run_threads(writers + 1, work) == []
        assert set(statuses) == {200}
        assert rs.get(APP, token) is None
        assert _leftovers(redis_client, namespace, token, user) == [] or what == "logout"
        if what == "logout-all":
            assert rs.get(APP, other) is None
            assert rs.soid(APP, user) == []
            assert _leftovers(redis_client, namespace, other, user) == []
        else:
            # the other device lives on, intact; the killed one left nothing
            assert rs.get(APP, other) is not None
            assert [s["token"] for s in rs.soid(APP, user)] == [other]
            leftovers = [x for x in _leftovers(redis_client, namespace, token, user) if x != "user index"]
            assert leftovers == []
