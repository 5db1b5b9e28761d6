"""The connection discipline (connection.py): a connection is idle with no reply owed, or closed.

Each test leaves a reply owed in a way a real call can end early, then checks that the next
caller on the same pool reads its own reply, never the one left behind.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from redis_sessions import BackendError, RedisSessions, core
from redis_sessions.connection import _READER, Lease, give_back, receive, roundtrip, send, take

from ..redis_server import RedisServer

APP = "connapp"


def echo(text: str) -> bytes:
    return core.pack_command([b"ECHO", text])


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def pool(redis_url: str) -> Iterator[redis.ConnectionPool]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client.connection_pool
    client.close()


def test_a_connection_given_back_owing_a_reply_is_closed(pool: redis.ConnectionPool) -> None:
    conn = take(pool)
    send(conn, echo("alice"))
    give_back(pool, conn)  # as when the caller was interrupted before reading
    assert conn._sock is None
    assert roundtrip(pool, echo("bob"), 1) == [b"bob"]


def test_a_lease_closes_what_it_did_not_read(pool: redis.ConnectionPool) -> None:
    pools = [pool, redis.Redis(connection_pool=pool).connection_pool]
    with pytest.raises(RuntimeError), Lease() as lease:
        first, second = lease.take(pools[0]), lease.take(pools[1])
        send(first, echo("alice"))
        send(second, echo("carol"))
        assert receive(first, 1) == [b"alice"]
        raise RuntimeError("a fan-out cut short")
    assert first._sock is not None  # read to the end: kept
    assert second._sock is None  # owed a reply: closed
    assert roundtrip(pool, echo("bob"), 1) == [b"bob"]


def test_a_connection_whose_close_was_interrupted_is_closed_when_taken_again(
        pool: redis.ConnectionPool) -> None:
    conn = take(pool)
    send(conn, echo("alice"))
    pool.release(conn)  # handed back still connected, still owing: its close never ran
    time.sleep(0.05)  # (even once the owed reply has arrived)
    again = take(pool)
    assert again is conn
    send(again, echo("bob"))
    assert receive(again, 1) == [b"bob"]
    give_back(pool, again)


def test_more_replies_than_requests_close_the_connection(pool: redis.ConnectionPool) -> None:
    conn = take(pool)
    send(conn, echo("one") + echo("two"))
    time.sleep(0.05)  # both replies arrive in one read
    with pytest.raises(BackendError, match="more replies than requests"):
        receive(conn, 1)
    give_back(pool, conn)
    assert conn._sock is None
    assert roundtrip(pool, echo("three"), 1) == [b"three"]


def test_a_reader_is_kept_for_the_next_call_only_when_read_to_its_last_byte(
        pool: redis.ConnectionPool) -> None:
    conn = take(pool)
    send(conn, echo("one"))
    assert receive(conn, 1) == [b"one"]
    kept = conn.__dict__[_READER]
    assert not kept.has_data()
    send(conn, echo("two") + echo("three"))
    time.sleep(0.05)  # both replies arrive in one read: the reader still holds "three"
    with pytest.raises(BackendError, match="more replies than requests"):
        receive(conn, 1)
    assert _READER not in conn.__dict__  # gone with what it held
    give_back(pool, conn)
    assert roundtrip(pool, echo("four"), 1) == [b"four"]


class Interrupted(BaseException):
    """What a signal handler raises (a request timeout): not an Exception."""


def test_a_signal_raised_exception_never_hands_a_reply_to_the_next_call(
        own_server: RedisServer) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    rs = RedisSessions(own_server.url, wipe=0)
    try:
        alice = rs.create(APP, "alice", "10.0.0.1", d={"owner": "alice"})
        bob = rs.create(APP, "bob", "10.0.0.2", d={"owner": "bob"})
        wrong = 0
        for _ in range(5):
            own_server.pause()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                with pytest.raises(Interrupted):
                    rs.get(APP, alice)
            finally:
                own_server.resume()
            session = rs.get(APP, bob)  # at once: alice's reply may still be on its way
            wrong += session is None or session["d"] != {"owner": "bob"}
        assert wrong == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        rs.close()


def test_a_bounded_pool_serves_more_threads_than_connections(redis_url: str,
                                                             namespace: str) -> None:
    # long-lived threads (a gthread worker's): each keeps serving requests for the whole run
    # (a call, then other work), and waits at most 1 s for a free connection
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=4, timeout=1)
    rs = RedisSessions(redis.Redis(connection_pool=pool), namespace=namespace, wipe=0)
    tokens = [rs.create(APP, f"user{i}", "10.0.0.1", d={"owner": f"user{i}"}) for i in range(8)]
    errors: list[BaseException] = []
    wrong: list[str] = []

    deadline = time.monotonic() + 1.5

    def work(i: int) -> None:
        try:
            while time.monotonic() < deadline:
                session = rs.get(APP, tokens[i])
                if session is None or session["id"] != f"user{i}":
                    wrong.append(tokens[i])
                time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    rs.close()
    pool.disconnect()
    assert not errors and not wrong
    assert len(pool._connections) <= 4
