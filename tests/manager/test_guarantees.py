"""What we promise beyond Node: atomic updates, no zombies, exact values, one round trip each."""

from __future__ import annotations

import threading

import pytest

from redis_sessions import RedisSessions, ValidationError, scripts

APP = "testapp"


def test_concurrent_sets_lose_nothing(rs: RedisSessions, redis_url, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    threads, writes = 8, 50
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(writes):
                assert rs.set(APP, token, {f"t{n}_{i}": i}) is not None
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    session = rs.get(APP, token)
    assert len(session["d"]) == threads * writes
    assert all(session["d"][f"t{n}_{i}"] == i for n in range(threads) for i in range(writes))
    assert session["w"] == 1 + threads * writes


def test_set_and_get_after_kill_recreate_nothing(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    rs.kill(APP, token)
    assert rs.set(APP, token, {"a": 1}) is None
    assert rs.get(APP, token) is None
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []


def test_expired_session_reads_as_none_and_is_removed(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", ttl=60)
    redis_client.hincrby(f"{namespace}:{APP}:{token}", "la", -61)
    assert rs.set(APP, token, {"a": 1}) is None
    assert rs.get(APP, token) is None
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []


def test_logout_racing_with_writes_leaves_no_partial_session(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            rs.set(APP, token, {f"k{i}": i})
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    rs.kill(APP, token)
    stop.set()
    t.join()
    assert list(redis_client.scan_iter(f"{namespace}:*")) == []


EXACT = {
    "ascii": "plain",
    "unicode": "é ü 中文 🎉 \u2028 \"quoted\" back\\slash \n\t",
    "empty": "",
    "big": 2**53 + 1,
    "huge": -(2**80) + 3,
    "zero": 0,
    "float": 0.1 + 0.2,
    "tiny": 5e-324,
    "large_float": 1.7976931348623157e308,
    "neg_zero": -0.0,
    "float_int": 3.0,
    "true": True,
    "false": False,
}


def test_values_round_trip_exactly(rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d=EXACT)
    stored = rs.get(APP, token)["d"]
    assert stored == EXACT
    for key, value in EXACT.items():
        assert type(stored[key]) is type(value), key
        assert repr(stored[key]) == repr(value), key


def test_untouched_keys_keep_their_bytes(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    # as another writer (Node, or by hand) might have stored it: spacing, escapes, exponent
    raw = '{ "n" : 12345678901234567890 , "f":1.5E+300,"s":"\\u00e9\\"","o":{"x":[1,{"y":2}]} }'
    redis_client.hset(key, "d", raw)
    rs.set(APP, token, {"new": 1})
    assert redis_client.hget(key, "d").decode() == (
        '{"n":12345678901234567890,"f":1.5E+300,"s":"\\u00e9\\"","o":{"x":[1,{"y":2}]},"new":1}'
    )
    rs.set(APP, token, {"é\"": "replaced"})  # the decoded key matches the escaped stored key
    d = rs.get(APP, token)["d"]
    assert d["s"] == 'é"' and d["é\""] == "replaced" and d["n"] == 12345678901234567890


def test_none_deletes_and_forbidden_types_name_the_key(rs: RedisSessions) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1, "b": 2})
    assert rs.set(APP, token, {"a": None})["d"] == {"b": 2}
    for bad in ([b"x"], {"x": object()}, b"bytes", object(), float("nan"), float("inf"),
                "\ud800", 10**5000):
        with pytest.raises(ValidationError) as info:
            rs.set(APP, token, {"thekey": bad})
        assert "thekey" in str(info.value)
    assert rs.get(APP, token)["d"] == {"b": 2}


def test_corrupted_session_reads_as_none(rs, redis_client, namespace) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    key = f"{namespace}:{APP}:{token}"
    redis_client.hset(key, "d", "{not json")
    assert rs.get(APP, token) is None
    with pytest.raises(Exception) as info:
        rs.set(APP, token, {"a": 1})
    assert "not a JSON object" in str(info.value)
    redis_client.hset(key, "d", "{}")
    redis_client.hset(key, "r", "many")
    assert rs.get(APP, token) is None


@pytest.mark.parametrize("op", ["get", "set", "create"])
def test_one_round_trip(rs: RedisSessions, command_counter, op) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"a": 1})
    rs.get(APP, token)  # scripts are loaded and the connection is held from here on
    counter = command_counter()
    if op == "get":
        assert rs.get(APP, token) is not None
    elif op == "set":
        assert rs.set(APP, token, {"b": 2}) is not None
    else:
        rs.create(APP, "user2", "10.0.0.1", d={"a": 1})
    assert counter.count == 1


def test_a_server_without_the_library_gets_it_again(rs: RedisSessions, redis_client) -> None:
    token = rs.create(APP, "user1", "10.0.0.1")
    redis_client.function_flush()  # as after a restart without persistence
    assert redis_client.function_list(library=scripts.LIBRARY_NAME) == []
    assert rs.get(APP, token)["id"] == "user1"
    assert len(redis_client.function_list(library=scripts.LIBRARY_NAME)) == 1
    # pipelined calls (a wipe, killall) that all find it missing load it once and all run
    tokens = [rs.create(APP, "user2", "10.0.0.1") for _ in range(3)]
    redis_client.function_flush()
    assert rs.killall(APP) == 4
    assert all(rs.get(APP, t) is None for t in [token, *tokens])


def test_max_sessions_evicts_the_least_recently_active(rs, redis_client, namespace) -> None:
    tokens = [rs.create(APP, "user1", "10.0.0.1") for _ in range(3)]
    now = int(redis_client.time()[0])
    ages = {tokens[0]: 50, tokens[1]: 300, tokens[2]: 10}
    for token, age in ages.items():
        redis_client.zadd(f"{namespace}:{APP}:_sessions", {f"{token}:user1": now - age})
    newest = rs.create(APP, "user1", "10.0.0.1", max_sessions=2)
    left = {s["token"] for s in rs.soid(APP, "user1")}
    assert left == {newest, tokens[2]}
    assert rs.get(APP, tokens[1]) is None and rs.get(APP, tokens[0]) is None


def test_max_sessions_under_concurrency_never_exceeds_the_cap(rs: RedisSessions) -> None:
    def creator() -> None:
        for _ in range(20):
            rs.create(APP, "user1", "10.0.0.1", max_sessions=3)

    pool = [threading.Thread(target=creator) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(rs.soid(APP, "user1")) == 3


def test_session_size_limits(redis_url, namespace) -> None:
    from redis_sessions import SessionTooLarge

    with RedisSessions(
        redis_url, namespace=namespace, wipe=0, max_data_keys=5, max_data_bytes=200
    ) as small:
        token = small.create(APP, "user1", "10.0.0.1", d={"a": 1})
        with pytest.raises(SessionTooLarge, match="keys"):
            small.set(APP, token, {f"k{i}": i for i in range(10)})
        with pytest.raises(SessionTooLarge, match="bytes"):
            small.set(APP, token, {"big": "x" * 500})
        with pytest.raises(SessionTooLarge):
            small.create(APP, "user1", "10.0.0.1", d={"big": "x" * 500})
        assert small.get(APP, token)["d"] == {"a": 1}  # nothing of the refused writes landed
        assert len(small.soid(APP, "user1")) == 1
