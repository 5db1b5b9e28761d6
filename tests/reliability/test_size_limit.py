"""Sessions beyond the documented size limit (keys, bytes) get a clear error; Redis keeps the
last accepted data and never grows past the limit."""

from __future__ import annotations

import pytest

from redis_sessions import RedisSessions, SessionTooLarge
from redis_sessions._constants import MAX_DATA_BYTES, MAX_DATA_KEYS

from .conftest import APP, call

SMALL_KEYS = 20
SMALL_BYTES = 2000


@pytest.fixture
def small(redis_url, namespace):
    manager = RedisSessions(redis_url, namespace=namespace, wipe=0, max_data_keys=SMALL_KEYS,
                            max_data_bytes=SMALL_BYTES)
    yield manager
    manager.close()


def stored_d(redis_client, namespace: str, token: str) -> bytes | None:
    return redis_client.hget(f"{namespace}:{APP}:{token}", "d")


def test_documented_defaults_are_enforced(rs, redis_client, namespace):
    token = rs.create(APP, "u", "127.0.0.1")
    with pytest.raises(SessionTooLarge, match="keys"):
        rs.set(APP, token, {f"k{i}": 1 for i in range(MAX_DATA_KEYS + 1)})
    with pytest.raises(SessionTooLarge, match="bytes"):
        rs.set(APP, token, {"blob": "x" * MAX_DATA_BYTES})
    with pytest.raises(SessionTooLarge):
        rs.create(APP, "u", "127.0.0.1", d={"blob": "x" * (MAX_DATA_BYTES + 1)})
    assert stored_d(redis_client, namespace, token) is None  # nothing was stored
    rs.set(APP, token, {f"k{i}": 1 for i in range(MAX_DATA_KEYS)})  # exactly the limit is fine
    assert len(rs.get(APP, token)["d"]) == MAX_DATA_KEYS


def test_growing_one_key_at_a_time_stops_at_the_limit(make_app, small, redis_client, namespace):
    app = make_app(sessions=small, on_backend_error="raise")
    token = call(app, path="/login", query="user=u").cookie()
    accepted = 0
    refused = 0
    for i in range(SMALL_KEYS + 10):
        try:
            response = call(app, f"{APP}={token}", path="/set", query=f"k{i}=v")
        except SessionTooLarge:
            refused += 1
            continue
        assert response.code == 200
        accepted += 1
    assert accepted == SMALL_KEYS and refused == 10
    assert len(small.get(APP, token)["d"]) == SMALL_KEYS
    assert len(stored_d(redis_client, namespace, token)) <= SMALL_BYTES


def test_raise_mode_clear_error(make_app, small, redis_client, namespace):
    app = make_app(sessions=small, on_backend_error="raise")
    token = call(app, path="/login", query="user=u").cookie()
    call(app, f"{APP}={token}", path="/set", query="keep=1")
    before = stored_d(redis_client, namespace, token)
    with pytest.raises(SessionTooLarge, match=r"bytes; the limit is 2000"):
        call(app, f"{APP}={token}", path="/big", query=f"bytes={SMALL_BYTES * 50}")
    with pytest.raises(SessionTooLarge, match=r"keys; the limit is 20"):
        call(app, f"{APP}={token}", path="/big", query=f"keys={SMALL_KEYS * 5}")
    assert stored_d(redis_client, namespace, token) == before  # Redis untouched
    assert small.get(APP, token)["d"] == {"keep": "1"}


def test_too_large_reaches_the_app_whatever_on_backend_error_says(make_app, small, redis_client,
                                                                  namespace):
    """on_backend_error="anonymous" (the default) is for Redis outages: the app's own oversized
    data raises SessionTooLarge (issue 18, item 5): when assigned if one value alone is over the
    limit, else when saved. Redis keeps the last accepted data."""
    app = make_app(sessions=small)
    token = call(app, path="/login", query="user=u").cookie()
    call(app, f"{APP}={token}", path="/set", query="keep=1")
    before = stored_d(redis_client, namespace, token)
    with pytest.raises(SessionTooLarge, match="d.blob alone"):  # at the assignment
        call(app, f"{APP}={token}", path="/big", query=f"bytes={SMALL_BYTES * 50}")
    with pytest.raises(SessionTooLarge, match="keys; the limit is 20"):  # at the save
        call(app, f"{APP}={token}", path="/big", query=f"keys={SMALL_KEYS * 5}")
    with pytest.raises(SessionTooLarge, match="bytes; the limit is 2000"):  # at the save
        call(app, f"{APP}={token}", path="/big", query="keys=2&bytes=1990")
    assert stored_d(redis_client, namespace, token) == before
    assert small.get(APP, token)["d"] == {"keep": "1"}


def test_oversized_anonymous_data_at_login_is_refused(make_app, small, redis_client, namespace):
    """Data put in an anonymous session moves into the new one at upgrade(): the limit holds
    there too, and no session is created."""

    def app_body(environ, start_response):
        from redis_sessions import get_session

        session = get_session(environ)
        session["blob"] = "x" * (SMALL_BYTES * 10)
        session.upgrade("u")
        start_response("200 OK", [])
        return [b""]

    app = make_app(app_body, sessions=small, on_backend_error="raise")
    with pytest.raises(SessionTooLarge):
        call(app)
    assert small.soid(APP, "u") == []
