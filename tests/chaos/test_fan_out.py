"""Issue 17, item 3: a cluster fan-out (killall) that raises while reading one master's batch
(here ReplicationTimeout: that master's replica is stopped, so its WAIT is not acknowledged)
must read or close the other masters' connections before it raises. Otherwise their replies
stay owed: the thread's next get() of a live session reads one of them (None, or garbage), and
soid() fails with a raw IndexError.

The other masters are held back with CLIENT PAUSE WRITE, so their replies are still owed when
the fan-out raises; the master whose replica is stopped is each master in turn, so one round has
it read first whatever order the wire reads the masters in."""

from __future__ import annotations

import signal

import pytest
import redis

from redis_sessions.errors import ReplicationTimeout

from .conftest import blocking_cluster
from .users import Population, Tally, report

HOLD_MS = 400


def replica_of(cluster, master):
    for node in cluster.nodes:
        if node.alive and node.port != master.port:
            info = node.client().info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == master.port:
                return node
    raise AssertionError(f"master {master.port} has no replica")


def test_cluster_killall_cut_short_leaves_no_reply_owed(cluster, cluster_ns):
    rs = blocking_cluster(cluster.url, cluster_ns, durability="replicated", replicas=1,
                          timeout_ms=100)
    pop = Population(users=30, sessions=1)
    pop.create_all(rs)
    tally = Tally()
    masters = cluster.masters()
    for n, slow in enumerate(masters):
        Population(users=30, sessions=1, app="chaosdoomed").create_all(rs)  # writes to wait for
        replica = replica_of(cluster, slow)
        replica.process.send_signal(signal.SIGSTOP)
        try:
            for other in masters:
                if other is not slow:
                    client = redis.Redis(port=other.port)
                    client.execute_command("CLIENT", "PAUSE", HOLD_MS, "WRITE")
                    client.close()
            with pytest.raises(ReplicationTimeout):
                rs.killall("chaosdoomed")
            # at once, on the same thread and manager: every live session is still its owner's
            pop.verify(rs, tally)
        finally:
            replica.process.send_signal(signal.SIGCONT)
    report("cluster killall cut short, then get/soid of every user (3 rounds)", [tally])
    rs.close()
    cluster.wait_ok()
    assert (tally.wrong, tally.crashed, tally.failed) == (0, 0, 0), tally.samples + tally.failures
