"""Issue 10's defects at the manager and script level: each test failed before its fix."""

from __future__ import annotations

import secrets

import pytest
import redis

from redis_sessions import RedisSessions, scripts
from redis_sessions.errors import BackendError, ValidationError

APP = "app1"


def _keys(client: redis.Redis, namespace: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{namespace}:*")}


def test_max_sessions_does_not_count_expired_sessions(rs, redis_client, namespace) -> None:
    """Defect 5: an expired-but-unwiped session counted towards the cap and a live one went."""
    live = [rs.create(APP, "u", "10.0.0.1", ttl=3600) for _ in range(2)]
    expired = rs.create(APP, "u", "10.0.0.1", ttl=10)
    redis_client.hincrby(f"{namespace}:{APP}:{expired}", "la", -100)  # expired, not wiped
    now = int(redis_client.time()[0])
    redis_client.zadd(f"{namespace}:{APP}:_sessions", {f"{t}:u": now - 50 for t in live})
    newest = rs.create(APP, "u", "10.0.0.1", max_sessions=3)
    assert {s["token"] for s in rs.soid(APP, "u")} == {*live, newest}
    assert not redis_client.exists(f"{namespace}:{APP}:{expired}")
    assert redis_client.sismember(f"{namespace}:{APP}:us:u", expired) == 0


def test_a_script_refuses_a_bad_ttl_before_writing(rs, redis_client, namespace) -> None:
    """Defect 8: the script itself checks ttl before its first write (EXPIRE used to fail
    halfway, leaving a session with no TTL that the wiper could not remove)."""
    ctx = rs._app(APP)
    token = "A" * 64
    with pytest.raises(ValidationError, match="ttl"):  # the script's refusal: bad input
        rs._wire.run(
            scripts.CREATE,
            (*ctx.keys, ctx.session_prefix + token, ctx.user_prefix + "u"),
            (*ctx.args, token, "u", "10.0.0.1", 2**70, "0", 0, *rs.limits),
        )
    assert _keys(redis_client, namespace) == set()


def test_wipe_counts_sessions_redis_already_expired(rs, redis_client, namespace) -> None:
    """Defect 10: with redis_ttl (the default) Redis may expire a hash before the wiper runs;
    removing its index entries is removing an expired session, and wipe() counts it."""
    tokens = [rs.create(APP, f"u{i}", "10.0.0.1", ttl=10) for i in range(5)]
    for token in tokens:  # as if Redis's TTL had run out: the hash is gone, the indexes stay
        redis_client.delete(f"{namespace}:{APP}:{token}")
    expiry = f"{namespace}:SESSIONS"
    redis_client.zadd(expiry, {m: 1 for m in redis_client.zrange(expiry, 0, -1)})
    assert rs.wipe() == 5
    assert redis_client.zcard(expiry) == 0
    assert redis_client.zcard(f"{namespace}:{APP}:_sessions") == 0


@pytest.fixture
def limited_url(redis_server, redis_url, redis_client):
    """A URL of an ACL user that may use every key and command but no pub/sub channel."""
    if redis_server is None:
        pytest.skip("creating an ACL user needs the private server (REDIS_URL is shared)")
    user, password = "rs" + secrets.token_hex(4), secrets.token_hex(8)
    redis_client.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all",
                                 "resetchannels")
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    yield f"redis://{user}:{password}@{host_port}/0"
    redis_client.execute_command("ACL", "DELUSER", user)


def test_a_script_that_fails_commits_nothing(limited_url, rs, namespace) -> None:
    """Defect 11: without channel permission PUBLISH fails; it now runs before the first write,
    so set and kill report the error and change nothing."""
    token = rs.create(APP, "u", "10.0.0.1", d={"a": 1})
    limited = RedisSessions(limited_url, namespace=namespace, wipe=0)
    try:
        with pytest.raises(BackendError):
            limited.set(APP, token, {"a": 2})
        with pytest.raises(BackendError):
            limited.kill(APP, token)
        with pytest.raises(BackendError):
            limited.killsoid(APP, "u")
    finally:
        limited.close()
    assert rs.get(APP, token)["d"] == {"a": 1}
    assert [s["token"] for s in rs.soid(APP, "u")] == [token]
