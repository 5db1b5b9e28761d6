"""The same random (and hostile) inputs to both twins must give the same outcome; signing with
one twin must verify with the other. The pure twin is the reference (helpers.PURE)."""

from __future__ import annotations

import json

import hiredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_sessions._constants import TOKEN_ALPHABET

from .helpers import PURE, outcome

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_chars = st.sampled_from(list(' \t;="\x00\x7f.Zaz09\u00e9\u00ff\u20ac\ud800\udfff\U0001f600'))
hostile_text = st.text(hostile_chars | st.characters(), max_size=80)
token_like = st.text(st.sampled_from(TOKEN_ALPHABET + "Z"), min_size=60, max_size=68)
names = st.sampled_from(["app", "sid", "a", "", "\u00e9", "x y"])
keys = st.lists(st.binary(max_size=80), max_size=3)


@st.composite
def cookie_headers(draw):
    pairs = draw(st.lists(st.tuples(hostile_text | names, st.sampled_from(["=", " = ", "", "=="]),
                                    hostile_text | token_like), max_size=12))
    seps = draw(st.sampled_from(["; ", ";", " ;\t", ";;"]))
    return seps.join(n + e + v for n, e, v in pairs)


@SETTINGS
@given(header=cookie_headers() | hostile_text | st.none(), name=names, keys=st.none() | keys)
def test_cookies_same(core_impl, header, name, keys) -> None:
    assert outcome(core_impl.cookie_value, header, name) == outcome(PURE.cookie_value, header, name)
    assert outcome(core_impl.extract_token, header, name, keys) == outcome(
        PURE.extract_token, header, name, keys)


@SETTINGS
@given(token=token_like | hostile_text, key=st.binary(max_size=130), other=st.binary(max_size=10))
def test_sign_unsign_mixed(core_impl, token, key, other) -> None:
    signed = outcome(core_impl.sign, token, key)
    assert signed == outcome(PURE.sign, token, key)
    if signed[0] == "ok":
        value = signed[1]
        expected = token if PURE.is_token(token) else None
        assert core_impl.unsign(value, [other, key]) == PURE.unsign(value, [key]) == expected
        header = f"x=1; app={value}; y=2"
        assert core_impl.extract_token(header, "app", [key]) == PURE.extract_token(header, "app", [key])
        if key != other:
            assert core_impl.unsign(value, [other]) is None


@SETTINGS
@given(value=hostile_text | token_like.map(lambda t: t + "." + "A" * 43), key=st.binary(max_size=8))
def test_unsign_hostile(core_impl, value, key) -> None:
    assert core_impl.unsign(value, [key]) == PURE.unsign(value, [key])
    assert core_impl.is_token(value) == PURE.is_token(value)


@SETTINGS
@given(random=st.binary(max_size=100), ms=st.integers(min_value=0, max_value=2**80))
def test_token_from_random_same(core_impl, random, ms) -> None:
    assert core_impl.token_from_random(random, ms) == PURE.token_from_random(random, ms)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(
    [0.0, -0.0, 1, 1.0, True, "1"])
values = scalars | st.lists(st.integers(), max_size=2) | st.binary(max_size=2)
mappings = st.dictionaries(st.text(max_size=6) | st.integers(max_value=3), values, max_size=8)


@SETTINGS
@given(changes=mappings)
def test_encode_changes_same(core_impl, changes) -> None:
    assert outcome(core_impl.encode_changes, changes) == outcome(PURE.encode_changes, changes)
    if outcome(PURE.encode_changes, changes)[0] == "ok":
        for value in core_impl.encode_changes(changes)[1::2]:
            assert value == b"" or json.loads(value) is not None or value == b"null"


@SETTINGS
@given(old=mappings, new=mappings, overlap=st.booleans())
def test_diff_same(core_impl, old, new, overlap) -> None:
    if overlap:
        new = {**old, **new}
    assert outcome(core_impl.diff, old, new) == outcome(PURE.diff, old, new)
    snap = core_impl.snapshot(old)
    assert snap == old and snap is not old
    assert outcome(core_impl.diff, snap, snap) in (("ok", []), outcome(PURE.diff, snap, snap))


def bulk(item: bytes | None) -> bytes:
    return b"$-1\r\n" if item is None else b"$%d\r\n%s\r\n" % (len(item), item)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                           | st.floats(allow_nan=False),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                           max_leaves=6)
texts = st.binary(max_size=12) | st.text(max_size=8).map(lambda s: s.encode("utf-8", "surrogatepass"))
d_fields = st.none() | texts | st.dictionaries(st.text(max_size=5), json_values, max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode())
ints = st.integers(min_value=-(2**62), max_value=2**62)


@st.composite
def resp_replies(draw):
    """RESP bytes of a session-script reply, sometimes damaged."""
    items = [bulk(draw(texts)), *(b":%d\r\n" % draw(ints) for _ in range(4)),
             bulk(draw(st.none() | texts)), bulk(draw(d_fields)), b":%d\r\n" % draw(st.sampled_from([0, 1, 2]))]
    damage = draw(st.sampled_from(["none", "none", "drop", "extra", "int-as-bulk", "nil"]))
    if damage == "drop":
        items.pop(draw(st.integers(0, 7)))
    elif damage == "extra":
        items.append(b":1\r\n")
    elif damage == "int-as-bulk":
        items[draw(st.integers(1, 4))] = bulk(b"12")
    elif damage == "nil":
        return b"*-1\r\n"
    return b"*%d\r\n" % len(items) + b"".join(items)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=resp_replies())
def test_parse_session_split_replies(core_impl, data) -> None:
    whole = hiredis.Reader()
    whole.feed(data)
    reply = whole.gets()
    expected = PURE.parse_session(reply)
    assert core_impl.parse_session(reply) == expected
    for cut in range(1, len(data)):
        reader = hiredis.Reader()
        reader.feed(data[:cut])
        first = reader.gets()
        assert first is False  # incomplete until the rest arrives
        reader.feed(data[cut:])
        assert core_impl.parse_session(reader.gets()) == expected
    decoded = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
    decoded.feed(data)
    str_reply = decoded.gets()
    assert core_impl.parse_session(str_reply) == PURE.parse_session(str_reply)


@SETTINGS
@given(args=st.lists(st.binary(max_size=20) | st.text(max_size=10) | st.integers() | st.booleans()
                     | st.floats(), max_size=6))
def test_pack_command_same(core_impl, args) -> None:
    result = outcome(core_impl.pack_command, args)
    assert result == outcome(PURE.pack_command, args)
    if result[0] == "ok":
        reader = hiredis.Reader()
        reader.feed(result[1])
        assert reader.gets() == [a if isinstance(a, bytes) else str(a).encode("utf-8", "surrogatepass")
                                 for a in args]
