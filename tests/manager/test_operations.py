"""The redis-sessions operations against a real Redis: Node's behaviour, layout and return shapes."""

from __future__ import annotations



from redis_sessions import RedisSessions
from redis_sessions._constants import TOKEN_ALPHABET

APP = "testapp"


def test_create_writes_nodes_layout(rs: RedisSessions, redis_client, namespace: str) -> None:
    token = rs.create(APP, "user1", "127.0.0.1", ttl=3600, d={"a": "x", "b": True})
    ns = namespace
    assert len(token) == 64 and token[55] == "Z"
    assert set(token[:55]) <= set(TOKEN_ALPHABET)
    session_key = f"{ns}:{APP}:{token}"
    stored = {k.decode(): v.decode() for k, v in redis_client.hgetall(session_key).items()}
    now = int(redis_client.time()[0])
    assert stored.pop("d") == '{"a":"x","b":true}'
    la = int(stored.pop("la"))
    assert abs(la - now) <= 1
    # and "p", ours with redis_ttl: its user's token set was persisted (scripts/_lib.lua's touch)
    assert stored == {"id": "user1", "r": "1", "w": "1", "ip": "127.0.0.1", "ttl": "3600",
                      "p": "1"}
    assert redis_client.zrange(f"{ns}:{APP}:_sessions", 0, -1, withscores=True) == [
        (f"{token}:user1".encode(), la)
    ]
    assert redis_client.zrange(f"{ns}:{APP}:_users", 0, -1, withscores=True) == [(b"user1", la)]
    assert redis_client.zrange(f"{ns}:SESSIONS", 0, -1, withscores=True) == [
        (f"{APP}:{token}:user1".encode(), la + 3600)
    ]
    assert redis_client.smembers(f"{ns}:{APP}:us:user1") == {token.encode()}


def test_create_without_data_has_no_d_field(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"gone": None})
    assert not redis_client.hexists(f"{namespace}:{APP}:{token}", "d")
    assert "d" not in rs.get(APP, token)


def test_get_returns_nodes_shape_and_counts_reads(rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=600)
    first = rs.get(APP, token)
    assert first == {"id": "user1", "r": 1, "w": 1, "ttl": 600, "idle": 0, "ip": "10.0.0.1"}
    assert rs.get(APP, token)["r"] == 2  # counters as read, before the increment


def test_get_of_unknown_token_is_none(rs: RedisSessions) -> None:
    assert rs.get(APP, "a" * 64) is None


def test_set_merges_and_null_deletes(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": "x", "n": 1, "keep": "me"})
    updated = rs.set(APP, token, {"a": None, "c": "y", "n": 2})
    assert updated["d"] == {"n": 2, "keep": "me", "c": "y"}
    assert updated["w"] == 2 and updated["r"] == 1
    raw = redis_client.hget(f"{namespace}:{APP}:{token}", "d")
    assert raw == b'{"n":2,"keep":"me","c":"y"}'  # stored order kept, new keys appended


def test_set_deleting_every_key_removes_the_d_field(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    assert "d" not in rs.set(APP, token, {"a": None})
    assert not redis_client.hexists(f"{namespace}:{APP}:{token}", "d")


def test_kill_removes_every_trace(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    assert rs.kill(APP, token) == 1
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []
    assert rs.kill(APP, token) == 0


def test_kill_keeps_the_users_other_sessions(rs: RedisSessions, redis_client, namespace) -> None:
    t1 = rs.create(APP, "user1", "10.0.0.1")
    t2 = rs.create(APP, "user1", "10.0.0.2")
    assert rs.kill(APP, t1) == 1
    assert redis_client.zscore(f"{namespace}:{APP}:_users", "user1") is not None
    assert [s["token"] for s in rs.soid(APP, "user1")] == [t2]


def test_killsoid_and_killall_counts(rs: RedisSessions, redis_client, namespace) -> None:
    for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        rs.create(APP, "alice", ip)
    rs.create(APP, "bob", "4.4.4.4")
    rs.create("otherapp", "bob", "5.5.5.5")
    assert rs.killsoid(APP, "alice") == 3
    assert rs.killsoid(APP, "alice") == 0
    assert rs.killall(APP) == 1
    assert rs.soapp("otherapp", 600)[0]["id"] == "bob"
    remaining = {k.decode() for k in redis_client.scan_iter(f"{namespace}:*")}
    assert all(":otherapp:" in k or k.endswith(":SESSIONS") for k in remaining)


def test_killall_works_in_chunks(rs: RedisSessions, monkeypatch) -> None:
    import redis_sessions.operations as operations

    monkeypatch.setattr(operations, "KILL_CHUNK", 7)
    for i in range(30):
        rs.create(APP, f"user{i % 4}", "10.0.0.1")
    assert rs.killall(APP) == 30
    assert rs.soapp(APP, 600) == []


def test_soid_soapp_activity(rs: RedisSessions) -> None:
    a1 = rs.create(APP, "alice", "1.1.1.1", d={"x": 1})
    a2 = rs.create(APP, "alice", "1.1.1.2")
    b1 = rs.create(APP, "bob", "2.2.2.2")
    alice = {s["token"]: s for s in rs.soid(APP, "alice")}
    assert set(alice) == {a1, a2}
    assert alice[a1]["d"] == {"x": 1} and alice[a1]["r"] == 1
    assert {s["token"] for s in rs.soapp(APP, 600)} == {a1, a2, b1}
    assert rs.activity(APP, 600) == 2
    rs.get(APP, a1)  # soid/soapp read without recording activity; get does
    assert {s["token"]: s["r"] for s in rs.soid(APP, "alice")}[a1] == 2


def test_soapp_is_newest_first_and_respects_dt(rs: RedisSessions, redis_client, namespace) -> None:
    old = rs.create(APP, "u1", "1.1.1.1")
    new = rs.create(APP, "u2", "1.1.1.1")
    now = int(redis_client.time()[0])
    redis_client.zadd(f"{namespace}:{APP}:_sessions", {f"{old}:u1": now - 100})
    redis_client.zadd(f"{namespace}:{APP}:_users", {"u1": now - 100})
    assert [s["token"] for s in rs.soapp(APP, 600)] == [new, old]
    assert [s["token"] for s in rs.soapp(APP, 50)] == [new]
    assert rs.activity(APP, 50) == 1


def test_ids_with_colons_stay_intact(rs: RedisSessions) -> None:
    token = rs.create(APP, "tenant:42:user:7", "10.0.0.1")
    assert rs.get(APP, token)["id"] == "tenant:42:user:7"
    assert [s["id"] for s in rs.soid(APP, "tenant:42:user:7")] == ["tenant:42:user:7"]
    assert rs.soapp(APP, 600)[0]["id"] == "tenant:42:user:7"
    assert rs.killall(APP) == 1


def test_integer_ids_are_accepted_as_text(rs: RedisSessions) -> None:
    token = rs.create(APP, 42, "10.0.0.1")
    assert rs.get(APP, token)["id"] == "42"
    assert rs.killsoid(APP, 42) == 1


def test_ping_and_context_manager(redis_url: str, namespace: str) -> None:
    with RedisSessions(redis_url, namespace=namespace, wipe=0) as manager:
        assert manager.ping() is True


def test_no_resave_keeps_a_fixed_expiry(rs: RedisSessions, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=100, no_resave=True)
    key = f"{namespace}:{APP}:{token}"
    assert rs.get(APP, token)["no_resave"] is True
    # pretend 30 s went by: the remaining time is 70 and is stored as such
    redis_client.hincrby(key, "la", -30)
    session = rs.get(APP, token)
    assert session["ttl"] == 70 and session["idle"] == 30
    assert int(redis_client.hget(key, "ttl")) == 70
    assert rs.get(APP, token)["ttl"] == 70  # no time passed: no further change


def test_sliding_expiry_keeps_an_active_session(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=100)
    key = f"{namespace}:{APP}:{token}"
    redis_client.hincrby(key, "la", -90)
    assert rs.get(APP, token)["idle"] == 90
    assert int(redis_client.hget(key, "la")) >= int(redis_client.time()[0]) - 1
    assert rs.get(APP, token)["ttl"] == 100
