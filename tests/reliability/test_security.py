"""Security properties: cookie attributes, the __Host- prefix, constant-time signature checks,
token entropy, no pickle, session fixation, key rotation."""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from pathlib import Path

import pytest

import redis_sessions
from redis_sessions import _constants, _pycore, core
from redis_sessions.wsgi import SessionMiddleware

from .conftest import APP, call, routes

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(redis_sessions.__file__).resolve().parent


def login(app, user="u", cookie=None, name=APP):
    response = call(app, cookie, path="/login", query=f"user={user}")
    return response, response.cookie(name)


# -- cookie attributes -----------------------------------------------------------------------


def test_default_cookie_attributes(make_app):
    response, token = login(make_app())
    (header,) = response.set_cookies
    parts = [p.strip() for p in header.split(";")]
    assert parts[0] == f"{APP}={token}"
    assert "Path=/" in parts and "HttpOnly" in parts and "SameSite=Lax" in parts
    assert "Secure" not in parts
    assert not any(p.startswith(("Domain=", "Max-Age=", "Expires=")) for p in parts)
    # and when the cookie is expired (logout) the same attributes come along
    expired = call(make_app(), f"{APP}={token}", path="/logout").set_cookies[0]
    assert "Max-Age=0" in expired and "Path=/" in expired and "HttpOnly" in expired


def test_secure_when_configured(make_app):
    response, _ = login(make_app(cookie={"secure": True, "samesite": "Strict"}))
    parts = [p.strip() for p in response.set_cookies[0].split(";")]
    assert "Secure" in parts and "SameSite=Strict" in parts and "HttpOnly" in parts


def test_host_prefix_through_the_app_name(rs):
    """What the middleware offers today: the cookie is named after the app, and an app name may
    start with __Host- (Node's app rule allows "_" and "-")."""
    app = SessionMiddleware(routes, app_name="__Host-rel", sessions=rs, cookie={"secure": True})
    response, token = login(app, name="__Host-rel")
    header = response.set_cookies[0]
    assert header.startswith(f"__Host-rel={token};")
    assert "; Secure" in header and "; Path=/" in header and "Domain=" not in header
    assert call(app, f"__Host-rel={token}").body.startswith(repr((token, {})).encode())


def test_host_prefix_as_a_cookie_option_keeps_the_app_name(rs, command_counter):
    """cookie={"name_prefix": "__Host-"}: the cookie is __Host-<app> while the app (Redis keys,
    Node interop) stays "reltest"; an unprefixed cookie (which a sibling subdomain could plant)
    is not read."""
    app = SessionMiddleware(routes, app_name=APP, sessions=rs,
                            cookie={"secure": True, "name_prefix": "__Host-"})
    response, token = login(app, name=f"__Host-{APP}")
    header = response.set_cookies[0]
    assert header.startswith(f"__Host-{APP}={token};")
    assert "; Secure" in header and "; Path=/" in header and "Domain=" not in header
    assert token and rs.get(APP, token) is not None
    assert call(app, f"__Host-{APP}={token}").body.startswith(repr((token, {})).encode())
    counter = command_counter()
    assert call(app, f"{APP}={token}").body.startswith(b"(None, {})")
    assert counter.count == 0
    expired = call(app, f"__Host-{APP}={token}", path="/logout").set_cookies[0]
    assert expired.startswith(f"__Host-{APP}=;") and "Max-Age=0" in expired


@pytest.mark.parametrize("options", [{"secure": False}, {"secure": True, "domain": "example.com"},
                                     {"secure": True, "path": "/app"}])
def test_host_prefix_misconfiguration_is_refused(rs, options):
    """Browsers silently drop a __Host- cookie without Secure, with a Domain or with a Path other
    than "/" (every login would be lost): the middleware refuses it at start-up."""
    with pytest.raises(ValueError):
        SessionMiddleware(routes, app_name=APP, sessions=rs,
                          cookie={"name_prefix": "__Host-", **options})


def test_secure_prefix_needs_secure(rs):
    with pytest.raises(ValueError):
        SessionMiddleware(routes, app_name=APP, sessions=rs, cookie={"name_prefix": "__Secure-"})


# -- constant-time signature comparison ------------------------------------------------------


def test_pure_twin_compares_with_hmac_compare_digest():
    source = inspect.getsource(_pycore.unsign)
    assert "hmac.compare_digest(" in source
    assert "==" not in source.split("for key in keys", 1)[1]


def test_compiled_core_compares_in_constant_time():
    source = ROOT / "_core" / "_core.pyx"
    if not source.exists():  # tests run against an installed wheel, without the source tree
        pytest.skip(f"{source} is not here (tests copied out of the source tree)")
    pyx = source.read_text()
    body = re.search(r"static int rs_ct_equal\([^)]*\)\s*\{(.*?)\n    \}", pyx, re.S)
    assert body, "rs_ct_equal not found in _core/_core.pyx"
    code = body.group(1)
    # an accumulate-all-bytes loop: no early exit, no memcmp
    assert re.search(r"for\s*\(i = 0; i < n; i\+\+\)\s*acc \|= ", code)
    assert "return" in code and code.count("return") == 1 and "memcmp" not in code
    unsign = pyx[pyx.index("cdef object _unsign_range"):pyx.index("def unsign(")]
    assert "rs_ct_equal(sig, given" in unsign
    assert "memcmp" not in unsign and "sig ==" not in unsign


def test_pure_twin_calls_compare_digest_for_every_key(monkeypatch):
    calls = []
    real = _pycore.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(_pycore.hmac, "compare_digest", spy)
    token = _pycore.new_token()
    keys = [b"k1", b"k2", b"k3"]
    assert _pycore.unsign(_pycore.sign(token, b"k3"), keys) == token
    assert len(calls) == 3
    assert _pycore.unsign(token + "." + "A" * 43, keys) is None
    assert len(calls) == 6


# -- token entropy ---------------------------------------------------------------------------


def test_token_entropy_from_the_constants():
    bits = _constants.TOKEN_RANDOM_LENGTH * math.log2(len(_constants.TOKEN_ALPHABET))
    assert len(set(_constants.TOKEN_ALPHABET)) == len(_constants.TOKEN_ALPHABET) == 61
    assert _constants.TOKEN_RANDOM_LENGTH == 55
    assert bits >= 320, bits  # 326.2 bits


def test_token_letters_are_uniform(core_impl):
    """Chi-square over 1.1 million letters (61 categories, 60 degrees of freedom): modulo bias
    (256 % 61 != 0) would show as ~1,400; uniform random stays near 60. Also per position."""
    impl = core_impl
    n = 20_000
    alphabet = _constants.TOKEN_ALPHABET
    tokens = [impl.new_token() for _ in range(n)]
    assert len(set(tokens)) == n
    for token in tokens[:100]:
        assert len(token) == 64 and token[55] == "Z"
        assert set(token[:55]) <= set(alphabet)
    letters = Counter("".join(t[:55] for t in tokens))
    expected = n * 55 / len(alphabet)
    chi2 = sum((letters.get(c, 0) - expected) ** 2 / expected for c in alphabet)
    assert chi2 < 130, chi2  # p ~ 1e-6 for 60 dof
    for position in (0, 27, 54):
        column = Counter(t[position] for t in tokens)
        expected = n / len(alphabet)
        chi2 = sum((column.get(c, 0) - expected) ** 2 / expected for c in alphabet)
        assert chi2 < 130, (position, chi2)


# -- no pickle ---------------------------------------------------------------------------------


def test_no_pickle_marshal_or_eval_anywhere():
    sources = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.lua"), *(ROOT / "_core").glob("*.pyx"),
               *(ROOT / "_core").glob("*.pxd"), *(ROOT / "_core").glob("*.h")]
    assert len(sources) > 10
    banned = re.compile(r"\b(pickle|cPickle|marshal|shelve|dill|cloudpickle|jsonpickle|yaml)\b"
                        r"|(?<![\w.])(eval|exec|compile|__import__)\s*\(")
    hits = []
    for path in sources:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if banned.search(line) and not line.lstrip().startswith(("#", "--")):
                hits.append(f"{path}:{number}: {line.strip()}")
    assert hits == []


def test_session_data_is_json_not_objects(rs, redis_client, namespace):
    token = rs.create(APP, "u", "127.0.0.1", d={"a": "cos\nsystem\n(S'echo hi'\ntR.", "b": 1})
    raw = redis_client.hget(f"{namespace}:{APP}:{token}", "d")
    assert raw.startswith(b"{") and b'"b":1' in raw.replace(b" ", b"")
    assert rs.get(APP, token)["d"]["a"].startswith("cos\nsystem")


# -- session fixation --------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["bare", "signed"])
def test_attacker_chosen_token_is_never_adopted(make_app, rs, signed):
    keys = ["k"] if signed else None
    app = make_app(secret_keys=keys)
    chosen = core.new_token()  # valid format, never created by the server
    value = core.sign(chosen, b"k") if signed else chosen
    assert call(app, f"{APP}={value}").body.startswith(b"(None, {})")
    response, new = login(app, "victim", cookie=f"{APP}={value}")
    token = core.unsign(new, (b"k",)) if signed else new
    assert token and token != chosen
    assert rs.get(APP, chosen) is None
    assert [s["token"] for s in rs.soid(APP, "victim")] == [token]


@pytest.mark.parametrize("same_user", [False, True])
def test_planted_existing_session_is_replaced_at_login(make_app, rs, same_user):
    """The attacker logs in, plants their (valid) cookie in the victim's browser; the victim's
    login gets a new token and the planted one dies, whoever it belonged to."""
    app = make_app()
    _, planted = login(app, "victim" if same_user else "attacker")
    _, token = login(app, "victim", cookie=f"{APP}={planted}")
    assert token and token != planted
    assert rs.get(APP, planted) is None
    assert call(app, f"{APP}={planted}").body.startswith(b"(None, {})")
    # and regenerate() (privilege change) issues a new token too
    session_token = token

    def regen(environ, start_response):
        from redis_sessions import get_session

        get_session(environ).regenerate()
        start_response("200 OK", [])
        return [b""]

    again = call(make_app(regen), f"{APP}={session_token}").cookie()
    assert again and again != session_token and rs.get(APP, session_token) is None


# -- key rotation ------------------------------------------------------------------------------


def test_a_cookie_of_an_older_key_is_signed_again_with_the_current_one(make_app, rs):
    """Re-signed on use (issue 18): once the old key is removed, those users stay logged in."""
    _, old_cookie = login(make_app(secret_keys=["old-key"]), "u")
    token = old_cookie.split(".")[0]
    rotated = make_app(secret_keys=["new-key", "old-key"])
    response = call(rotated, f"{APP}={old_cookie}")  # a read: the session is found
    cookie = response.cookie()
    assert cookie is not None and core.unsign(cookie, (b"new-key",)) == token
    assert call(rotated, f"{APP}={cookie}").cookie() is None  # signed by the current key: kept
    blind = call(rotated, f"{APP}={old_cookie}", path="/blind", query="a=1").cookie()
    assert blind is not None and core.unsign(blind, (b"new-key",)) == token
    retired = make_app(secret_keys=["new-key"])
    assert call(retired, f"{APP}={cookie}").body.startswith(repr((token, {"a": "1"})).encode())
    # a cookie of a session that is gone is expired, not signed again
    rs.kill(APP, token)
    assert call(rotated, f"{APP}={old_cookie}").cookie() == ""


def test_key_rotation_old_verifies_new_signs(make_app, rs, command_counter):
    old_app = make_app(secret_keys=["old-key"])
    _, old_cookie = login(old_app, "u")
    token = old_cookie.split(".")[0]
    assert core.unsign(old_cookie, (b"old-key",)) == token

    rotated = make_app(secret_keys=["new-key", "old-key"])
    assert call(rotated, f"{APP}={old_cookie}").body.startswith(repr((token, {})).encode())
    _, new_cookie = login(rotated, "u2")
    new_token = new_cookie.split(".")[0]
    assert core.unsign(new_cookie, (b"new-key",)) == new_token
    assert core.unsign(new_cookie, (b"old-key",)) is None
    # a max_age cookie is re-sent on writes: then it carries the new key's signature
    resent = make_app(secret_keys=["new-key", "old-key"], cookie={"max_age": 3600})
    cookie = call(resent, f"{APP}={old_cookie}", path="/set", query="a=1").cookie()
    assert cookie is not None and core.unsign(cookie, (b"new-key",)) == token

    retired = make_app(secret_keys=["new-key"])  # the old key dropped: its cookies are dead
    counter = command_counter()
    assert call(retired, f"{APP}={old_cookie}").body.startswith(b"(None, {})")
    assert counter.count == 0
