"""Node's validation rules and messages: every bad input is a ValidationError, never a Redis error."""

from __future__ import annotations

import pytest

from redis_sessions import RedisSessions, ValidationError
from redis_sessions._constants import MAX_SESSIONS, MAX_TTL

APP = "testapp"
TOKEN = "A" * 64


def _create(**kw):
    args = {"app": APP, "id": "user1", "ip": "10.0.0.1"} | kw
    return lambda rs: rs.create(**args)


CASES = [
    # (name, call, code, message)
    ("create no app", _create(app=None), "missingParameter", "No app supplied"),
    ("create empty app", _create(app=""), "missingParameter", "No app supplied"),
    ("create short app", _create(app="ab"), "invalidFormat", "Invalid app format"),
    ("create long app", _create(app="a" * 21), "invalidFormat", "Invalid app format"),
    ("create app with colon", _create(app="my:app"), "invalidFormat", "Invalid app format"),
    ("create app with space", _create(app="my app"), "invalidFormat", "Invalid app format"),
    ("create app non-ascii", _create(app="appé"), "invalidFormat", "Invalid app format"),
    ("create app not str", _create(app=123), "invalidFormat", "Invalid app format"),
    ("create app unhashable", _create(app=["app"]), "invalidFormat", "Invalid app format"),
    ("get app unhashable", lambda rs: rs.get({"a": 1}, TOKEN), "invalidFormat", "Invalid app format"),
    ("soid id unhashable", lambda rs: rs.soid(APP, ["u"]), "invalidFormat", "Invalid id format"),
    ("create no id", _create(id=None), "missingParameter", "No id supplied"),
    ("create empty id", _create(id=""), "missingParameter", "No id supplied"),
    ("create id too long", _create(id="x" * 129), "invalidFormat", "Invalid id format"),
    ("create id line break", _create(id="a\nb"), "invalidFormat", "Invalid id format"),
    ("create id carriage return", _create(id="a\rb"), "invalidFormat", "Invalid id format"),
    ("create id list", _create(id=["a"]), "invalidFormat", "Invalid id format"),
    ("create id bool", _create(id=True), "invalidFormat", "Invalid id format"),
    # issue 10, defect 6: never a UnicodeEncodeError or a bare ValueError from deeper down
    ("create id lone surrogate", _create(id="\ud800"), "invalidFormat", "Invalid id format"),
    ("create id huge int", _create(id=10**5000), "invalidFormat", "Invalid id format"),
    ("create ip lone surrogate", _create(ip="a\udfff"), "invalidFormat", "Invalid ip format"),
    ("soid id lone surrogate", lambda rs: rs.soid(APP, "\ud800"), "invalidFormat",
     "Invalid id format"),
    ("killsoid id lone surrogate", lambda rs: rs.killsoid(APP, "a\udfffb"), "invalidFormat",
     "Invalid id format"),
    ("soid id huge int", lambda rs: rs.soid(APP, 10**5000), "invalidFormat", "Invalid id format"),
    ("create no ip", _create(ip=None), "missingParameter", "No ip supplied"),
    ("create empty ip", _create(ip=""), "missingParameter", "No ip supplied"),
    ("create ip too long", _create(ip="1" * 40), "invalidFormat", "Invalid ip format"),
    ("create ip not str", _create(ip=1234), "invalidFormat", "Invalid ip format"),
    ("create ttl small", _create(ttl=9), "invalidValue", "ttl must be a positive integer >= 10"),
    ("create ttl negative", _create(ttl=-100), "invalidValue", "ttl must be a positive integer >= 10"),
    ("create ttl float", _create(ttl=100.5), "invalidValue", "ttl must be a positive integer >= 10"),
    ("create ttl str", _create(ttl="100"), "invalidValue", "ttl must be a positive integer >= 10"),
    ("create ttl bool", _create(ttl=True), "invalidValue", "ttl must be a positive integer >= 10"),
    ("create ttl above max", _create(ttl=MAX_TTL + 1), "invalidValue",
     "ttl must be a positive integer >= 10 and <= 315360000"),
    ("create ttl 2**70", _create(ttl=2**70), "invalidValue",
     "ttl must be a positive integer >= 10 and <= 315360000"),
    ("create d list", _create(d=[1]), "invalidValue", "d must be an object"),
    ("create d nested object()", _create(d={"o": {"x": object()}}), "invalidValue",
     "d.o has a forbidden type. Only strings, numbers, booleans, null, lists and objects are allowed."),
    ("create max_sessions 0", _create(max_sessions=0), "invalidValue",
     "max_sessions must be a positive integer"),
    ("create max_sessions above max", _create(max_sessions=MAX_SESSIONS + 1), "invalidValue",
     "max_sessions must be a positive integer <= 100000"),
    ("create max_sessions 2**64", _create(max_sessions=2**64), "invalidValue",
     "max_sessions must be a positive integer <= 100000"),
    ("get no token", lambda rs: rs.get(APP, None), "missingParameter", "No token supplied"),
    ("get short token", lambda rs: rs.get(APP, "A" * 63), "invalidFormat", "Invalid token format"),
    ("get long token", lambda rs: rs.get(APP, "A" * 65), "invalidFormat", "Invalid token format"),
    ("get token symbol", lambda rs: rs.get(APP, "A" * 63 + "!"), "invalidFormat",
     "Invalid token format"),
    ("get token unicode", lambda rs: rs.get(APP, "é" * 64), "invalidFormat", "Invalid token format"),
    ("get token bytes", lambda rs: rs.get(APP, b"A" * 64), "invalidFormat", "Invalid token format"),
    ("get bad app", lambda rs: rs.get("x", TOKEN), "invalidFormat", "Invalid app format"),
    ("set no d", lambda rs: rs.set(APP, TOKEN, None), "missingParameter", "No d supplied"),
    ("set d not object", lambda rs: rs.set(APP, TOKEN, "x"), "invalidValue", "d must be an object"),
    ("set d empty", lambda rs: rs.set(APP, TOKEN, {}), "invalidValue",
     "d must containt at least one key."),
    ("set d forbidden", lambda rs: rs.set(APP, TOKEN, {"k": [b"bytes"]}), "invalidValue",
     "d.k has a forbidden type. Only strings, numbers, booleans, null, lists and objects are allowed."),
    ("set bad token", lambda rs: rs.set(APP, "short", {"a": 1}), "invalidFormat",
     "Invalid token format"),
    ("kill bad token", lambda rs: rs.kill(APP, "x" * 64 + "\n"), "invalidFormat",
     "Invalid token format"),
    ("killsoid no id", lambda rs: rs.killsoid(APP, ""), "missingParameter", "No id supplied"),
    ("killall bad app", lambda rs: rs.killall("no"), "invalidFormat", "Invalid app format"),
    ("soid bad id", lambda rs: rs.soid(APP, "a\nb"), "invalidFormat", "Invalid id format"),
    ("soapp dt small", lambda rs: rs.soapp(APP, 5), "invalidValue",
     "deltaTime must be a positive integer >= 10"),
    ("soapp dt str", lambda rs: rs.soapp(APP, "600"), "invalidValue",
     "deltaTime must be a positive integer >= 10"),
    ("soapp dt above max", lambda rs: rs.soapp(APP, MAX_TTL + 1), "invalidValue",
     "deltaTime must be a positive integer >= 10 and <= 315360000"),
    ("activity dt 2**70", lambda rs: rs.activity(APP, 2**70), "invalidValue",
     "deltaTime must be a positive integer >= 10 and <= 315360000"),
    ("activity dt none", lambda rs: rs.activity(APP, None), "invalidValue",
     "deltaTime must be a positive integer >= 10"),
]


@pytest.mark.parametrize(("call", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_validation_error(rs: RedisSessions, call, code, message) -> None:
    with pytest.raises(ValidationError) as info:
        call(rs)
    assert info.value.code == code
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs", [{"ttl": 2**70}, {"ttl": MAX_TTL + 1}, {"ttl": 2**31 * 10**6},
                                    {"max_sessions": 2**64}, {"max_sessions": MAX_SESSIONS + 1}])
def test_huge_numbers_are_refused_before_anything_is_written(rs, redis_client, namespace,
                                                              kwargs) -> None:
    with pytest.raises(ValidationError) as info:
        _create(d={"a": 1}, **kwargs)(rs)
    assert info.value.code == "invalidValue"
    assert list(redis_client.scan_iter(match=f"{namespace}:*")) == []


def test_the_upper_bounds_themselves_are_accepted(rs) -> None:
    token = _create(ttl=MAX_TTL, max_sessions=MAX_SESSIONS)(rs)
    assert rs.get(APP, token)["ttl"] == MAX_TTL
    assert rs.soapp(APP, MAX_TTL)[0]["token"] == token
    assert rs.activity(APP, MAX_TTL) == 1


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("kwargs", [{"namespace": "a:b"}, {"namespace": ""}, {"wipe": 5}])
def test_bad_constructor_arguments(redis_url, kwargs) -> None:
    with pytest.raises(ValidationError):
        RedisSessions(redis_url, **kwargs)


# -- apply_changes() (public): a change set is refused whole unless every pair is well formed ------

MALFORMED = [
    [b'"a"', b'1,"x":2'],  # smuggles a member
    [b'"a"', b'{"x":1},"y":{}'],
    [b'"a"', b'tru'],
    [b'"a"', b'[0x10]'],  # cjson would take it, JSON parsers do not
    [b'"a"', b'01'],
    [b'"a"', b'NaN'],
    [b'"a"', b' 1'],
    [b'"a"', b'"line\nbreak"'],
    [b'"a"', b'"bad \\x escape"'],
    [b'"a"', b'{"x":1,}'],
    [b'"a"', b'"\xff"'],
    [b'a', b'1'],  # a key that is not a JSON string
    [b'"a"', b'1', b'"b"'],  # a key without a value
]


@pytest.mark.parametrize("changes", MALFORMED, ids=[repr(c)[:40] for c in MALFORMED])
def test_malformed_changes_are_refused_before_anything_is_written(rs, redis_client, namespace,
                                                                   changes) -> None:
    token = rs.create(APP, "user1", "10.0.0.1", d={"keep": 1})
    key = f"{namespace}:{APP}:{token}"
    stored = redis_client.hgetall(key)
    with pytest.raises(ValidationError) as info:
        rs.apply_changes(APP, token, changes)
    assert info.value.code == "invalidValue"
    with pytest.raises(ValidationError):
        rs.upgrade(APP, token, "user1", "10.0.0.1", changes=changes)
    assert redis_client.hgetall(key) == stored
    assert rs.set(APP, token, {"more": 2})["d"] == {"keep": 1, "more": 2}
    assert [s["token"] for s in rs.soid(APP, "user1")] == [token]


@pytest.mark.parametrize("changes", MALFORMED, ids=[repr(c)[:40] for c in MALFORMED])
def test_the_set_script_refuses_malformed_changes_too(rs, redis_client, namespace,
                                                      changes) -> None:
    """A caller that skips the Python check (another client of the function library) is
    refused by the script, before it writes."""
    from redis_sessions import scripts

    token = rs.create(APP, "user1", "10.0.0.1", d={"keep": 1})
    key = f"{namespace}:{APP}:{token}"
    stored = redis_client.hgetall(key)
    call = rs._app(APP).call(scripts.SET, rs._app(APP).token_keys(token),
                             (token, *rs.limits, "", "0", "0", 0, *changes))
    with pytest.raises(Exception, match="RSINVALID"):
        redis_client.fcall(call.script.function.decode(), len(call.keys), *call.keys, *call.args)
    assert redis_client.hgetall(key) == stored


def test_a_scripts_refusal_is_a_validation_error_on_the_wires(rs, redis_url, namespace) -> None:
    """A script's RSINVALID reply becomes a ValidationError in wire.backend_error (beside
    RSTOOLARGE's SessionTooLarge), which every wire uses: whatever operation ran the script, the
    app gets its own error, never a BackendError (which on_backend_error would swallow)."""
    import asyncio

    from redis_sessions import BackendError, scripts
    from redis_sessions.aio import AsyncRedisSessions

    token = rs.create(APP, "user1", "10.0.0.1")
    ctx = rs._app(APP)
    call = ctx.call(scripts.SET, ctx.token_keys(token),
                    (token, *rs.limits, "", "0", "0", 0, b'"a"', b'1,"x":2'))
    with pytest.raises(ValidationError) as info:
        rs._wire.run(call.script, call.keys, call.args)
    assert not isinstance(info.value, BackendError) and info.value.code == "invalidValue"
    assert info.value.message == "a change is not a JSON key and one JSON value"

    async def on_the_async_wire() -> None:
        async with AsyncRedisSessions(redis_url, namespace=namespace, wipe=0) as ars:
            await ars._wire.run(call.script, call.keys, call.args)

    with pytest.raises(ValidationError) as info:
        asyncio.run(on_the_async_wire())
    assert not isinstance(info.value, BackendError)
    assert "d" not in rs.get(APP, token)  # nothing was written


def test_well_formed_changes_of_every_shape_are_applied(rs) -> None:
    from redis_sessions import core

    data = {"s": "plain", "e": 'quote " back \\ tab \t é \u2028', "n": -0.5e-3, "big": 2**70,
            "z": 0, "t": True, "f": False, "l": [1, "two", {"x": None}], "o": {"k": [[]]}}
    token = rs.create(APP, "user1", "10.0.0.1")
    changes = core.encode_changes(data)
    assert rs.apply_changes(APP, token, changes)["d"] == data
    assert rs.apply_changes(APP, token, [c.decode() for c in core.encode_changes({"s": None})]
                            )["d"] == {k: v for k, v in data.items() if k != "s"}
