"""Issue 17, item 1: a blocking call cut short while Redis has not answered yet must not leave
its reply owed on the connection, where the next call would read it as its own; nor half a
command sent, to which the next command would be glued. Each test holds the reply back for
certain (CLIENT PAUSE, or a stopped server), interrupts the call, and makes the next one."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

from redis_sessions.errors import SessionError
from redis_sessions.keys import ClusterKeys, token_bucket

from .conftest import blocking_cluster, blocking_single
from .drive import Alarm
from .users import APP, IP, Interrupt

PAUSE_MS = 400


def pause_clients(url_or_client, ms: int = PAUSE_MS) -> None:
    """CLIENT PAUSE: the server holds every client's commands for ``ms`` (this one's too)."""
    client = (redis.Redis.from_url(url_or_client) if isinstance(url_or_client, str)
              else url_or_client)
    client.execute_command("CLIENT", "PAUSE", ms, "ALL")
    client.close()


def interrupted(call, exception: type[BaseException], after: float = 0.1) -> None:
    """Run ``call`` with ``exception`` raised into it from a SIGALRM handler after ``after``
    seconds; fail if it returned before."""
    with Alarm(exception, after, after) as alarm:
        with pytest.raises(exception):
            with alarm.armed(after):
                call()
                time.sleep(1)  # (the call returned: let the alarm fire, the test fails below)
                pytest.fail("the call returned before the alarm")


def assert_mine(session, owner: str) -> None:
    assert session is not None, f"{owner}'s live session read as None"
    assert (session["id"], session["d"]["owner"]) == (owner, owner), \
        f"{owner}'s get() returned {session['id']}'s session"


@pytest.mark.parametrize("exception", [Interrupt, KeyboardInterrupt])
def test_single_server_next_call_never_reads_an_interrupted_reply(chaos_url, chaos_ns, exception):
    rs = blocking_single(chaos_url, chaos_ns)
    alice = rs.create(APP, "alice", IP, d={"owner": "alice"})
    bob = rs.create(APP, "bob", IP, d={"owner": "bob"})
    pause_clients(chaos_url)
    interrupted(lambda: rs.get(APP, alice), exception)
    try:  # at once, while alice's reply is still owed: bob's call goes on the same connection
        session = rs.get(APP, bob)
    except SessionError:
        session = "failed"
    if session != "failed":
        assert_mine(session, "bob")
    assert rs.soid(APP, "bob")[0]["id"] == "bob"
    rs.close()


def cluster_tokens_on_one_master(rs, cluster, namespace: str, owners: list[str]):
    """A token per owner, all on one master (found by their keys' slots), and that master."""
    client = cluster.client()
    keys = ClusterKeys(namespace)
    by_master: dict[str, dict[str, str]] = {}
    for n in range(200):
        for owner in owners:
            token = rs.create(APP, f"{owner}{n}", IP, d={"owner": f"{owner}{n}"})
            key = keys.session_prefix(APP, token_bucket(token)) + token
            node = client.get_node_from_key(key)
            by_master.setdefault(node.name, {})[owner] = (f"{owner}{n}", token)
            mine = by_master[node.name]
            if len(mine) == len(owners):
                client.close()
                return mine, node
    raise AssertionError("no master got a session of every owner")


@pytest.mark.parametrize("exception", [Interrupt, KeyboardInterrupt])
def test_cluster_next_call_never_reads_an_interrupted_reply(cluster, cluster_ns, exception):
    rs = blocking_cluster(cluster.url, cluster_ns)
    mine, node = cluster_tokens_on_one_master(rs, cluster, cluster_ns, ["alice", "bob"])
    alice, (bob_id, bob) = mine["alice"][1], mine["bob"]
    assert_mine(rs.get(APP, bob), bob_id)  # the connection to that master is open
    pause_clients(redis.Redis(host=node.host, port=node.port))
    interrupted(lambda: rs.get(APP, alice), exception)
    try:
        session = rs.get(APP, bob)
    except SessionError:
        session = "failed"
    if session != "failed":
        assert_mine(session, bob_id)
    assert [s["id"] for s in rs.soid(APP, bob_id)] == [bob_id]
    rs.close()


BIG = 16 << 20  # more than the loopback socket buffers hold: a send to a stopped server blocks


def test_single_server_interrupted_send_is_not_glued_to_the_next_command(chaos_server, chaos_url,
                                                                        chaos_ns):
    """A signal cuts a large set() short while its command is half sent (the server is
    stopped); the next call must go on a clean connection: not wait behind the half command
    (until the socket timeout) nor be read by Redis as the rest of it."""
    rs = blocking_single(chaos_url, chaos_ns, socket_timeout=2, max_data_bytes=2 * BIG)
    alice = rs.create(APP, "alice", IP, d={"owner": "alice"})
    bob = rs.create(APP, "bob", IP, d={"owner": "bob"})
    chaos_server.pause()
    try:
        interrupted(lambda: rs.set(APP, alice, {"big": "x" * BIG}), Interrupt, after=0.3)
    finally:
        chaos_server.resume()
    assert_mine(rs.get(APP, bob), "bob")
    session = rs.get(APP, alice)
    assert_mine(session, "alice")
    assert "big" not in session["d"]  # never sent whole: never applied
    rs.close()


def test_cluster_fast_path_send_that_failed_leaves_no_half_command(cluster, cluster_ns):
    """Issue 17, item 6: the cluster wire's fast path forgot a connection whose sendall failed
    (a send timeout: half the command went out) without closing it; the next attempt then sent
    the whole command again on it, after the half. Here the master is stopped for less than the
    cluster's node timeout (no failover) while a large set() is sent."""
    rs = blocking_cluster(cluster.url, cluster_ns, socket_timeout=0.4, max_data_bytes=2 * BIG)
    mine, node = cluster_tokens_on_one_master(rs, cluster, cluster_ns, ["alice", "bob"])
    (alice_id, alice), (bob_id, bob) = mine["alice"], mine["bob"]
    assert_mine(rs.get(APP, bob), bob_id)
    process = next(n for n in cluster.nodes if n.port == node.port).process
    process.send_signal(signal.SIGSTOP)  # for less than the node timeout: no failover
    resume = threading.Timer(0.6, process.send_signal, args=(signal.SIGCONT,))
    resume.start()
    outcome: object
    try:  # the send times out at 0.4 s, half done; the wire then tries again
        outcome = rs.set(APP, alice, {"big": "x" * BIG})
    except SessionError as exc:
        outcome = exc
    finally:
        resume.join()
        process.send_signal(signal.SIGCONT)
    time.sleep(0.2)
    assert outcome is not None, "set() found alice's live session missing"
    assert not isinstance(outcome, SessionError) or "Protocol" not in str(outcome), outcome
    session = rs.get(APP, alice)
    assert_mine(session, alice_id)
    assert session["d"].get("big") in (None, "x" * BIG), "alice's data was garbled"
    assert_mine(rs.get(APP, bob), bob_id)
    rs.close()
