"""Admin calls stay bounded whatever the data size: at a few hundred thousand sessions, no
command of soapp, soid (a user with 1,000 sessions), killall or wipe runs 5 ms or more (SLOWLOG
of the private server), and the paging iterators see every session once.

On a machine shared with other work the server is sometimes descheduled in the middle of a
command, which SLOWLOG records as a slow command whatever it was doing (a single HMGET then
"takes" 15 ms). So by default a few such outliers are tolerated (at most 1% of the commands, and
the scripts' mean well under the limit: a chunk too large is slow every time, not 1% of the
time); ``REDIS_SESSIONS_STRICT_SLOWLOG=1`` (an idle machine, CI) asserts an empty SLOWLOG.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import redis

from redis_sessions import RedisSessions

APP = "scaleapp"
TOTAL = 200_000  # sessions loaded; half of them expired
BIG_USER, BIG_SESSIONS = "big", 1000
USERS = 50_000
SLOW_US = 5000

# Loads sessions in Node's layout straight into Redis (a test fixture, not the product): tokens
# 'T' + 54 digits + 'Z' + 8 digits; the first BIG_SESSIONS belong to BIG_USER; from ARGV[7] on
# they expired long ago. ARGV: ns, app, first, count, now, users, first expired index
LOADER = """
local ns, app, first, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now, users, expired = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local prefix = ns .. ':' .. app .. ':'
for i = first, first + count - 1 do
  local token = string.format('T%054dZ00000000', i)
  local id = 'user' .. (i % users)
  if i < 1000 then id = 'big' end
  local la = now - (i % 500)
  if i >= expired then la = now - 8000 end
  redis.call('HSET', prefix .. token, 'id', id, 'r', 1, 'w', 1, 'ip', '10.0.0.1', 'la', la,
             'ttl', 7200, 'd', '{"n":1}')
  redis.call('ZADD', prefix .. '_sessions', la, token .. ':' .. id)
  redis.call('ZADD', prefix .. '_users', 'GT', la, id)
  redis.call('ZADD', ns .. ':SESSIONS', la + 7200, app .. ':' .. token .. ':' .. id)
  redis.call('SADD', prefix .. 'us:' .. id, token)
end
return count
"""


def load(client: redis.Redis, namespace: str, total: int, expired_from: int) -> None:
    now = int(client.time()[0])
    loader = client.register_script(LOADER)
    for first in range(0, total, 10_000):
        loader(args=[namespace, APP, first, min(10_000, total - first), now, USERS, expired_from])


@pytest.fixture
def slowlog(redis_server, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """SLOWLOG recording commands of SLOW_US or more, on the private server only."""
    if redis_server is None:
        pytest.skip("changes slowlog-log-slower-than: needs the private server, not REDIS_URL")
    before = redis_client.config_get("slowlog-*")
    redis_client.config_set("slowlog-log-slower-than", SLOW_US)
    redis_client.config_set("slowlog-max-len", 10_000)
    redis_client.slowlog_reset()
    yield redis_client
    for name, value in before.items():
        redis_client.config_set(name, value)
    redis_client.slowlog_reset()


def slow_commands(client: redis.Redis) -> list[tuple[int, str]]:
    return [(entry["duration"], str(entry["command"])[:80])
            for entry in client.slowlog_get(10_000)]


def assert_nothing_slow(client: redis.Redis, what: str) -> None:
    slow = slow_commands(client)
    if os.environ.get("REDIS_SESSIONS_STRICT_SLOWLOG"):
        assert slow == [], f"{what}: commands of {SLOW_US} us or more"
        return
    stats = client.info("commandstats")
    calls = sum(int(s["calls"]) for s in stats.values())
    scripts = stats.get("cmdstat_fcall", {"usec_per_call": 0})
    assert len(slow) <= max(3, calls // 100), f"{what}: {len(slow)} of {calls} commands slow"
    assert float(scripts["usec_per_call"]) < SLOW_US / 2, f"{what}: scripts' mean {scripts}"


@pytest.mark.slow
def test_admin_calls_never_block_redis(rs: RedisSessions, slowlog: redis.Redis, namespace):
    live = TOTAL // 2
    load(slowlog, namespace, TOTAL, live)
    slowlog.slowlog_reset()
    slowlog.config_resetstat()

    started = time.monotonic()
    listed = rs.soapp(APP, 600)
    assert len(listed) == live
    scores = [s["idle"] for s in listed]
    assert scores == sorted(scores)  # newest first
    assert len({s["token"] for s in listed}) == live
    del listed
    big = rs.soid(APP, BIG_USER)
    assert len(big) == BIG_SESSIONS
    assert sum(1 for _ in rs.iter_soid(APP, BIG_USER, page=100)) == BIG_SESSIONS
    assert rs.activity(APP, 600) == USERS + 1  # every user (and BIG_USER) has a live session
    assert rs.wipe() == TOTAL - live
    assert rs.killsoid(APP, BIG_USER) == BIG_SESSIONS
    assert rs.killall(APP) == live - BIG_SESSIONS
    elapsed = time.monotonic() - started

    assert_nothing_slow(slowlog, f"soapp/soid/activity/wipe/killsoid/killall ({elapsed:.1f}s)")
    assert rs.soapp(APP, 600) == []


def test_iter_soapp_pages_newest_first_and_sees_each_session_once(rs: RedisSessions,
                                                                  redis_client, namespace):
    load(redis_client, namespace, 1500, 1400)  # many sessions share one second: ties
    tokens = [s["token"] for s in rs.iter_soapp(APP, 600, page=7)]
    assert len(tokens) == len(set(tokens)) == 1400
    assert [s["token"] for s in rs.soapp(APP, 600)] == tokens


def test_iter_soapp_survives_sessions_touched_and_killed_while_paging(rs: RedisSessions,
                                                                      redis_client, namespace):
    load(redis_client, namespace, 300, 300)
    seen = []
    for n, session in enumerate(rs.iter_soapp(APP, 600, page=10)):
        seen.append(session["token"])
        if n % 25 == 0:
            rs.kill(APP, session["token"])  # the page cursor's entry goes
    assert len(seen) == len(set(seen)) == 300


def test_ls_streams_every_session_past_the_first_rows(rs: RedisSessions, redis_url, namespace,
                                                       capsys):
    from redis_sessions.cli import main

    load(redis.Redis.from_url(redis_url), namespace, 250, 250)
    assert main(["ls", APP, "--redis-url", redis_url, "--namespace", namespace,
                 "--show-tokens"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 250 + 1 and lines[-1] == f"250 sessions of {APP} active in the last 600s"
    assert len({line.split()[0] for line in lines[1:-1]}) == 250
    assert main(["ls", APP, "--json", "--redis-url", redis_url, "--namespace", namespace]) == 0
    import json

    assert len(json.loads(capsys.readouterr().out)["sessions"]) == 250


def test_replicated_durability_covers_every_write_of_session_data(redis_url, namespace):
    """set() and the session layer's saves wait too (issue 18: a failover lost acknowledged
    set() calls); only get()/load(), which record activity, and the wiper do not."""
    from redis_sessions import core
    from redis_sessions.errors import ReplicationTimeout

    with RedisSessions(redis_url, namespace=namespace, wipe=0) as plain:
        token = plain.create(APP, "alice", "10.0.0.1")
        with RedisSessions(redis_url, namespace=namespace, wipe=0, durability="replicated",
                           replicas=1, timeout_ms=20) as durable:
            assert durable.load(APP, token)["id"] == "alice"
            with pytest.raises(ReplicationTimeout) as caught:
                durable.set(APP, token, {"a": 1})
            assert caught.value.reply is not None  # written on the master, not acknowledged
            with pytest.raises(ReplicationTimeout):
                durable.apply_changes(APP, token, core.encode_changes({"b": 2}))
            with pytest.raises(ReplicationTimeout):
                durable.create_anonymous(APP, {"cart": 1})
        assert plain.get(APP, token)["d"] == {"a": 1, "b": 2}


def test_replicated_durability_reports_writes_no_replica_acknowledged(redis_url, namespace):
    from redis_sessions.errors import ReplicationTimeout, ValidationError

    with RedisSessions(redis_url, namespace=namespace, wipe=0) as plain:
        token = plain.create(APP, "alice", "10.0.0.1")
    durable = RedisSessions(redis_url, namespace=namespace, wipe=0, durability="replicated",
                            replicas=1, timeout_ms=20)
    try:
        assert durable.get(APP, token)["id"] == "alice"  # reads do not wait
        with pytest.raises(ReplicationTimeout) as caught:
            durable.create(APP, "bob", "10.0.0.1")  # the private server has no replica
        assert caught.value.acknowledged == 0
        with pytest.raises(ReplicationTimeout) as caught:
            durable.kill(APP, token)
        assert caught.value.reply == 1  # done on the master, not acknowledged by a replica
        with pytest.raises(ReplicationTimeout):
            durable.killsoid(APP, "bob")
    finally:
        durable.close()
    with pytest.raises(ValidationError):
        RedisSessions(redis_url, durability="sync")
    with pytest.raises(ValidationError):
        RedisSessions(redis_url, durability="replicated", replicas=0)
