"""Known answers, checked independently of the twins (hmac, hashlib, base64, json)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections import Counter
from decimal import Decimal

import pytest

from redis_sessions._constants import (
    TOKEN_ALPHABET,
    TOKEN_LENGTH,
    TOKEN_RANDOM_LENGTH,
    TOKEN_SEPARATOR,
)
from redis_sessions.errors import ValidationError, forbidden_type

KEY = b"secret key"


# ---- tokens
def test_new_token_shape_and_time(core_impl) -> None:
    before = time.time()
    token = core_impl.new_token()
    assert len(token) == TOKEN_LENGTH == 64
    assert token.isascii() and token.isalnum()
    assert token[TOKEN_RANDOM_LENGTH] == TOKEN_SEPARATOR == "Z"
    assert abs(int(token[TOKEN_RANDOM_LENGTH + 1 :], 36) / 1000 - before) < 1.0
    assert core_impl.is_token(token)


def test_letter_distribution(core_impl) -> None:
    counts = Counter("".join(core_impl.new_token()[:TOKEN_RANDOM_LENGTH] for _ in range(2000)))
    assert "Z" not in counts
    assert set(counts) == set(TOKEN_ALPHABET)
    expected = 2000 * TOKEN_RANDOM_LENGTH / len(TOKEN_ALPHABET)  # about 1803 each
    assert all(abs(n - expected) < 0.2 * expected for n in counts.values()), counts


def test_token_from_random(core_impl) -> None:
    random = bytes(range(256))
    token = core_impl.token_from_random(random, 0)
    assert token == (TOKEN_ALPHABET * 2)[:55] + "Z0"
    assert core_impl.token_from_random(bytes(range(244, 256)) * 5 + bytes(range(54)), 35) is None
    assert core_impl.token_from_random(bytes([243]) * 55 + bytes([255]) * 9, 36)[-3:] == "Z10"
    assert core_impl.token_from_random(bytes([255]) * 9 + bytes(55), 36 ** 20).endswith("Z1" + "0" * 20)
    token = core_impl.token_from_random(bytearray(64), 1700000000000)
    assert token[:56] == "A" * 55 + "Z" and int(token[56:], 36) == 1700000000000
    assert len(token) == 64 and token[56:].islower()
    with pytest.raises(TypeError):
        core_impl.token_from_random(bytes(64), True)
    with pytest.raises(ValueError):
        core_impl.token_from_random(bytes(64), -1)
    with pytest.raises(TypeError):
        core_impl.token_from_random("x" * 64, 1)


@pytest.mark.parametrize(
    "value, ok",
    [
        ("a" * 64, True),
        ("A1" * 32, True),
        ("a" * 63, False),
        ("a" * 65, False),
        ("a" * 63 + "\u00e9", False),
        ("a" * 63 + "\u0661", False),  # Arabic-Indic digit: isalnum but not ASCII
        ("a" * 63 + "\n", False),
        ("a" * 63 + "\x00", False),
        (b"a" * 64, False),
        (None, False),
        (123, False),
    ],
)
def test_is_token(core_impl, value, ok) -> None:
    assert core_impl.is_token(value) is ok


# ---- signing
def reference_sign(token: str, key: bytes) -> str:
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()
    return token + "." + base64.b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize("key", [b"", b"k", KEY, b"x" * 64, b"y" * 65, bytes(range(256))])
@pytest.mark.parametrize("token", ["a" * 64, "", "short", "\u00e9t\u00e9", "x" * 200])
def test_sign_matches_hmac(core_impl, key, token) -> None:
    assert core_impl.sign(token, key) == reference_sign(token, key)
    assert core_impl.sign(token, bytearray(key)) == reference_sign(token, key)


def test_sign_rejects_bad_types(core_impl) -> None:
    with pytest.raises(TypeError):
        core_impl.sign("a" * 64, "str key")
    with pytest.raises(TypeError):
        core_impl.sign(b"a" * 64, KEY)
    with pytest.raises(UnicodeEncodeError):
        core_impl.sign("\ud800", KEY)


def test_unsign_accepts_and_rejects(core_impl) -> None:
    token = "Tok3n" * 12 + "abcd"
    signed = reference_sign(token, KEY)
    assert core_impl.unsign(signed, [KEY]) == token
    assert core_impl.unsign(signed, [b"new", KEY]) == token  # rotation: old keys still verify
    assert core_impl.unsign(signed, (b"other",)) is None
    assert core_impl.unsign(signed, []) is None
    assert core_impl.unsign(signed[:-1], [KEY]) is None
    assert core_impl.unsign(signed + "A", [KEY]) is None
    assert core_impl.unsign(signed[:-1] + ("A" if signed[-1] != "A" else "B"), [KEY]) is None
    assert core_impl.unsign(token, [KEY]) is None
    assert core_impl.unsign("x." + signed, [KEY]) is None
    assert core_impl.unsign(reference_sign("a" * 63, KEY), [KEY]) is None
    assert core_impl.unsign(signed.replace(".", "\u00e9."), [KEY]) is None
    for hostile in ["", ".", "\x00", "\ud800." * 3, signed + "\ud800", "\u00e9" * 10000, "." * 10**5]:
        assert core_impl.unsign(hostile, [KEY]) is None
    assert core_impl.unsign(None, [KEY]) is None


def test_sha256_compiled_matches_hashlib(core_impl) -> None:
    if not hasattr(core_impl, "_sha256"):
        pytest.skip("the pure twin uses hashlib itself")
    used = core_impl._sha256_backend()
    try:
        for backend in ("portable", "bmi2", "sha-ni"):  # each falls back to the best below it the CPU has
            core_impl._use_sha256_backend(backend)
            for n in list(range(0, 130)) + [1000, 4096]:
                data = bytes((i * 7 + n) % 256 for i in range(n))
                assert core_impl._sha256(data) == hashlib.sha256(data).digest(), (backend, n)
            for key in (b"", KEY, b"z" * 100):
                core_impl._KEY_CACHE if False else None
                assert core_impl.sign("t" * 64, key) == reference_sign("t" * 64, key)
    finally:
        core_impl._use_sha256_backend(used)



def test_hmac_of_64_bytes_every_sha_backend(core_impl) -> None:
    """A 64-byte message (a token) takes its own HMAC path in the compiled core (the padding
    block's schedule precomputed, the outer block's constant words folded); lengths around it
    take the general one. Every backend, against hmac/hashlib, signing and verifying."""
    backends = ("portable", "bmi2", "sha-ni") if hasattr(core_impl, "_sha256_backend") else (None,)
    used = core_impl._sha256_backend() if backends[0] else None
    try:
        for backend in backends:
            if backend:
                core_impl._use_sha256_backend(backend)
            for n in (0, 1, 55, 56, 63, 64, 65, 119, 128):
                for seed in range(3):
                    token = "".join("aZ9xQ"[(i * 7 + seed * 3 + n) % 5] for i in range(n))
                    for key in (b"", KEY, b"z" * 100, bytes(range(seed, seed + 64))):
                        signed = core_impl.sign(token, key)
                        assert signed == reference_sign(token, key), (backend, n, seed, key)
                        if n == 64:
                            assert core_impl.unsign(signed, [b"other", key]) == token
                            assert core_impl.unsign(signed[:-1] + "?", [key]) is None
    finally:
        if used:
            core_impl._use_sha256_backend(used)


# ---- cookies
T = "T" * 64


@pytest.mark.parametrize(
    "header, value",
    [
        (None, None),
        ("", None),
        ("app=1", "1"),
        ("xapp=1; app=2", "2"),
        ("app =1", "1"),
        ("  \tapp\t =  v  ; other=3", "v"),
        ('app="quoted"', "quoted"),
        ('app=" spaced "', " spaced "),
        ('app="', '"'),
        ('app=""', ""),
        ("app=", ""),
        ("app", None),
        ("app; app=x", "x"),
        ("App=1", None),
        ("app=1; app=2", "1"),
        ("a=b=c; app=d=e", "d=e"),
        ("app=%41", "%41"),
        (";;;app=1;;", "1"),
        ("app=\u00e9\u20ac", "\u00e9\u20ac"),
        ("\u20ac=1; app=2", "2"),
        ("app=a\x00b", "a\x00b"),
        ("app\x00=1", None),
    ],
)
def test_cookie_value(core_impl, header, value) -> None:
    assert core_impl.cookie_value(header, "app") == value


def test_extract_token(core_impl) -> None:
    signed = reference_sign(T, KEY)
    assert core_impl.extract_token(f"a=1; app={T}; b=2", "app", None) == T
    assert core_impl.extract_token(f"a=1; app={T}; b=2", "app", []) == T
    assert core_impl.extract_token(f"app={T}x", "app", None) is None
    assert core_impl.extract_token(f"app={signed}", "app", [KEY]) == T
    assert core_impl.extract_token(f'app="{signed}"', "app", [b"old", KEY]) == T
    assert core_impl.extract_token(f"app={signed}", "app", [b"bad"]) is None  # bad signature
    assert core_impl.extract_token(f"app={T}", "app", [KEY]) is None  # unsigned with keys
    assert core_impl.extract_token(f"app={signed}", "app", None) is None
    assert core_impl.extract_token(None, "app", [KEY]) is None


def test_huge_headers(core_impl) -> None:
    many = "; ".join(f"c{i}=v{i}" for i in range(1000))
    assert core_impl.cookie_value(many + f"; app={T}", "app") == T
    assert core_impl.cookie_value(many, "c999") == "v999"
    assert core_impl.cookie_value("x" * 10_000, "app") is None
    assert core_impl.extract_token("app=" + "a" * 10_000, "app", [KEY]) is None


# ---- wire
def test_pack_command(core_impl) -> None:
    assert core_impl.pack_command([]) == b"*0\r\n"
    assert core_impl.pack_command(["GET", b"k\r\n", 12, -3, "\u00e9", 10**20]) == (
        b"*6\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n$2\r\n-3\r\n$2\r\n\xc3\xa9\r\n"
        b"$21\r\n100000000000000000000\r\n"
    )
    assert core_impl.pack_command([b"x" * 12345]).startswith(b"*1\r\n$12345\r\nxxx")
    for bad in (True, 1.5, None, bytearray(b"x"), ["x"]):
        with pytest.raises(TypeError):
            core_impl.pack_command(["SET", bad])


def test_parse_session_known(core_impl) -> None:
    d = {"a": 1, "b": "\u00e9", "c": [1, {"x": None}], "f": 1.5}
    reply = [b"user", 1, 2, 7200, 5, b"1.2.3.4", json.dumps(d).encode(), 1]
    expected = {"id": "user", "r": 1, "w": 2, "ttl": 7200, "idle": 5, "ip": "1.2.3.4", "d": d,
                "no_resave": True}
    assert core_impl.parse_session(reply) == expected
    assert list(core_impl.parse_session(reply)) == list(expected)
    as_str = [x.decode() if isinstance(x, bytes) else x for x in reply]
    assert core_impl.parse_session(as_str) == expected
    bare = [b"u", 0, 0, 10, 0, None, None, 0]
    assert core_impl.parse_session(bare) == {"id": "u", "r": 0, "w": 0, "ttl": 10, "idle": 0, "ip": ""}
    assert "d" not in core_impl.parse_session([b"u", 0, 0, 10, 0, None, b" {} ", 0])
    assert core_impl.parse_session(None) is None


@pytest.mark.parametrize(
    "reply",
    [
        [], [b"u", 0, 0, 10, 0, None, None], [b"u", 0, 0, 10, 0, None, None, 0, 0],
        (b"u", 0, 0, 10, 0, None, None, 0), b"u", {"id": b"u"},
        [None, 0, 0, 10, 0, None, None, 0], [b"\xff", 0, 0, 10, 0, None, None, 0],
        [b"u", b"0", 0, 10, 0, None, None, 0], [b"u", 0, True, 10, 0, None, None, 0],
        [b"u", 0, 0, 1.5, 0, None, None, 0], [b"u", 0, 0, 10, None, None, None, 0],
        [b"u", 0, 0, 10, 0, b"\xc3", None, 0], [b"u", 0, 0, 10, 0, 5, None, 0],
        [b"u", 0, 0, 10, 0, None, b"[1]", 0], [b"u", 0, 0, 10, 0, None, b"{", 0],
        [b"u", 0, 0, 10, 0, None, b"{}x", 0], [b"u", 0, 0, 10, 0, None, b"\xef\xbb\xbf{}", 0],
        [b"u", 0, 0, 10, 0, None, b"{\"a\":\xff}", 0], [b"u", 0, 0, 10, 0, None, b"", 0],
        [b"u", 0, 0, 10, 0, None, b"[" * 100000, 0], [b"u", 0, 0, 10, 0, None, 7, 0],
        [b"u", 0, 0, 10, 0, None, None, None], [b"u", 0, 0, 10, 0, None, None, b"1"],
    ],
)
def test_parse_session_corrupted(core_impl, reply) -> None:
    assert core_impl.parse_session(reply) is None


# ---- change sets
def test_encode_changes(core_impl) -> None:
    changes = {"s": 'a"b\\c\n\x01\u00e9\u2028', "t": True, "f": False, "i": -5, "big": 10**30,
               "x": 0.1, "e": 1e16, "z": -0.0, "n": None, "k\u00e9y": 1}
    out = core_impl.encode_changes(changes)
    assert out[0::2] == [json.dumps(k, ensure_ascii=False).encode() for k in changes]
    assert out[1::2] == [
        json.dumps(changes["s"], ensure_ascii=False).encode(), b"true", b"false", b"-5",
        b"1" + b"0" * 30, b"0.1", b"1e+16", b"-0.0", b"", b"1",
    ]
    for v in out[1::2]:
        if v:
            json.loads(v)


@pytest.mark.parametrize("value", [b"x", bytearray(b"x"), object(), {1}, frozenset(), 1j, Decimal("1"),
                                   [b"x"], {"a": {"b": [object()]}}, range(3), iter([1])])
def test_encode_forbidden_types(core_impl, value) -> None:
    with pytest.raises(ValidationError) as info:
        core_impl.encode_changes({"k": value})
    assert info.value.code == "invalidValue"
    assert info.value.message == forbidden_type("k").message


def test_encode_errors(core_impl) -> None:
    with pytest.raises(ValidationError, match="d keys must be strings, got int"):
        core_impl.encode_changes({1: "x"})
    for bad in ({"k": "\ud800"}, {"\udfff": 1}):
        with pytest.raises(ValidationError, match="is not valid Unicode"):
            core_impl.encode_changes(bad)
    for v in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValidationError):
            core_impl.encode_changes({"k": v})


def test_diff(core_impl) -> None:
    snap = core_impl.snapshot({"a": 1, "b": 0.0, "c": "x", "d": True, "l": [1, 2], "gone": 3, "nul": None})
    assert core_impl.diff(snap, dict(snap)) == []
    data = dict(snap)
    assert core_impl.diff(snap, data) == []
    data.update(a=True, b=-0.0, new="n", gone=None, c="x", l=[1, 2])
    assert core_impl.diff(snap, data) == [b'"a"', b"true", b'"b"', b"-0.0", b'"new"', b'"n"',
                                          b'"gone"', b""]
    assert core_impl.diff({"a": 1}, {"a": 1.0}) == [b'"a"', b"1.0"]
    assert core_impl.diff({"a": 1}, {}) == [b'"a"', b""]
    assert core_impl.diff({}, {"a": None}) == []
    assert core_impl.diff({"x": 1, "y": 2}, {"y": 2}) == [b'"x"', b""]
    assert core_impl.diff({"l": [1]}, {"l": [2]}) == [b'"l"', b"[2]"]
    with pytest.raises(ValidationError):
        core_impl.diff({"l": [1]}, {"l": [b"x"]})
