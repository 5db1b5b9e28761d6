"""Hostile HTTP input through the middleware: each gives an anonymous session, no exception and
zero Redis commands (counted through MONITOR), with the compiled core and its pure twin.

WSGI servers put the Cookie header in the environ as a latin-1 decoded str, so any byte 0-255
can arrive, including NUL and bytes that are not UTF-8.
"""

from __future__ import annotations

import random
import string

import pytest

from redis_sessions import core, session as session_module
from redis_sessions._constants import TOKEN_ALPHABET, TOKEN_LENGTH

from .conftest import APP, call

KEYS = ["current-key", "old-key"]
ALNUM = string.ascii_letters + string.digits


@pytest.fixture
def impl(core_impl, monkeypatch):
    """Run the test with the compiled core and with the pure twin doing the cookie work."""
    monkeypatch.setattr(session_module, "_extract_token", core_impl.extract_token)
    return core_impl


@pytest.fixture(params=[False, True], ids=["bare", "signed"])
def app(request, make_app, impl):
    return make_app(secret_keys=KEYS if request.param else None)


def _rand(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def hostile_cookies() -> list[str]:
    rng = random.Random(1234)
    token = _rand(rng, TOKEN_LENGTH)
    latin1 = bytes(range(256)).decode("latin-1")
    cases = [
        f"{APP}=" + _rand(rng, 9000),  # 9 KB value
        f"{APP}=" + "A" * 70_000,  # 70 KB value
        "; ".join(f"c{i}={_rand(rng, 20)}" for i in range(1000)),  # 1,000 other cookies
        "; ".join(f"{APP}={_rand(rng, 63)}" for _ in range(1000)),  # 1,000 of ours, all bad
        "; ".join(f"{APP}{i}={token}" for i in range(1000)),  # names that only start like ours
        f"{APP}=\x00",
        f"{APP}={token[:30]}\x00{token[31:]}",
        f"{APP}=\x00{token}",
        f"\x00{APP}={token}\x00",
        f"{APP}=" + b"\xff\xfe\xc3\x28\xa0\xa1".decode("latin-1"),
        f"{APP}=" + "é" * 64,  # 64 characters, not ASCII
        f"{APP}={token[:63]}\xe9",
        f"{APP}=" + latin1,
        latin1,
        latin1 + f"; {APP}=" + latin1,
        f"{APP}=" + token.replace(token[5], "\u2028", 1),  # not latin-1 at all (a non-WSGI server)
        f"{APP}=" + "\U0001f600" * 64,
        f"{APP}=garbage; {APP}={token}",  # duplicated: the first one counts
        f"{APP}=; {APP}=; {APP}=",
        f'{APP}="{token[:-1]}"',
        f'{APP}="',
        f"{APP}",
        f"{APP}==",
        f"{APP}={token}.",
        f"{APP}=.{token}",
        f"{APP}={token}.{'x' * 43}.{'y' * 43}",
        f"{APP}={token}.{'é' * 43}",
        f"{APP}={token}.\x00" + "A" * 42,
        ";" * 10_000,
        "=" * 10_000,
        " \t" * 5_000,
        "",
    ]
    return cases


def assert_anonymous(response, expect_cookie_untouched: bool = True) -> None:
    assert response.code == 200
    assert response.body.startswith(b"(None, {})"), response.body[:200]
    if expect_cookie_untouched:
        assert response.cookie() is None


def test_hostile_cookies_anonymous_no_redis(app, command_counter):
    cases = hostile_cookies()
    counter = command_counter()
    for cookie in cases:
        assert_anonymous(call(app, cookie))
    assert counter.count == 0


def test_tokens_of_every_wrong_length(app, command_counter):
    rng = random.Random(7)
    counter = command_counter()
    tried = 0
    for length in range(0, 201):
        if length == TOKEN_LENGTH:
            continue
        for alphabet in (ALNUM, TOKEN_ALPHABET):
            value = _rand(rng, length, alphabet)
            assert_anonymous(call(app, f"{APP}={value}"))
            assert_anonymous(call(app, f"other=1; {APP}={value}; more=2"))
            tried += 2
    # 64 characters but not all letters and digits
    for bad in "-_.~+/=%!$&'()*,:<>?@[]^`{|}\" \x7f":
        value = _rand(rng, 63) + bad
        assert_anonymous(call(app, f"{APP}={value}"))
        tried += 1
    assert tried > 800
    assert counter.count == 0


def test_bad_signatures(make_app, impl, command_counter):
    app = make_app(secret_keys=KEYS)
    rng = random.Random(99)
    token = core.new_token()
    good = core.sign(token, KEYS[0].encode())
    sig = good.split(".", 1)[1]
    flipped = [token + "." + sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :] for i in range(len(sig))]
    cases = [
        token,  # unsigned where signing is on
        core.sign(token, b"attacker-key"),
        core.sign(token[::-1], KEYS[0].encode()).replace(token[::-1], token),  # a signature of another token
        token + "." + sig[:-1],
        token + "." + sig + "A",
        token + "." + sig + "=",
        token + "." + sig.upper(),
        token + ".",
        token + ".." + sig,
        "." + sig,
        *flipped,
        *(token + "." + _rand(rng, n) for n in range(0, 100)),
    ]
    counter = command_counter()
    for value in cases:
        assert_anonymous(call(app, f"{APP}={value}"))
    assert counter.count == 0
    # and the genuine value does reach Redis (one command: the session is unknown, the cookie is
    # expired); a first request opens the connection so its handshake is not counted
    call(app, f"{APP}={core.sign(core.new_token(), KEYS[0].encode())}")
    counter = command_counter()
    response = call(app, f"{APP}={good}")
    assert counter.count == 1
    assert_anonymous(response, expect_cookie_untouched=False)
    assert response.cookie() == ""


def test_unknown_token_one_command_and_expired(app, command_counter):
    token = core.new_token()
    call(app, path="/login", query="user=warm-up")  # opens the connection (handshake not counted)
    counter = command_counter()
    response = call(app, f"{APP}={token}" if app._keys is None else f"{APP}={core.sign(token, app._keys[0])}")
    assert counter.count == 1
    assert_anonymous(response, expect_cookie_untouched=False)
    assert response.cookie() == ""


def test_duplicated_cookie_first_wins(make_app, impl):
    """Two cookies of the same name: the first is used (browsers send the most specific path
    first), so an appended attacker cookie cannot displace the real session."""
    app = make_app()
    victim = call(app, path="/login", query="user=victim").cookie()
    attacker = call(app, path="/login", query="user=attacker").cookie()
    response = call(app, f"{APP}={victim}; {APP}={attacker}")
    assert response.body.startswith(repr((victim, {})).encode())
    response = call(app, f"{APP}=garbage; {APP}={victim}")
    assert_anonymous(response)


def test_hostile_request_with_a_live_session_does_not_touch_it(make_app, rs, impl):
    """Garbage around a valid cookie neither breaks nor alters the session."""
    app = make_app()
    token = call(app, path="/login", query="user=u1").cookie()
    call(app, f"{APP}={token}", path="/set", query="a=1")
    junk = "; ".join(f"j{i}=" + "\x00\xff" * 4 for i in range(500))
    response = call(app, f"{junk}; {APP}={token}; {junk}")
    assert response.body.startswith(repr((token, {"a": "1"})).encode())
    assert rs.get(APP, token)["d"] == {"a": "1"}


def test_hostile_header_types_in_environ(make_app, impl):
    """HTTP_COOKIE is always a str in WSGI; a server that puts bytes there gets an anonymous
    session or a TypeError from the core, never a crash deeper down."""
    app = make_app()
    for value in (b"reltest=abc", None):
        try:
            response = call(app, **({} if value is None else {"HTTP_COOKIE": value}))
        except TypeError:
            continue
        assert_anonymous(response)
