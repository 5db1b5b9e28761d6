"""The same random (and hostile) inputs to both twins must give the same outcome; signing with
one twin must verify with the other. The pure twin is the reference (helpers.PURE)."""

from __future__ import annotations

import json

import hiredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_sessions._constants import MAX_DEPTH, TOKEN_ALPHABET

from .helpers import HUGE, PURE, Float, Int, Level, Role, Text, nested, outcome

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


# Session values: JSON-like trees with hostile leaves (subclasses, huge ints, nan, lone
# surrogates, forbidden types), hostile keys, and now and then a tree around MAX_DEPTH.
leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
          | st.sampled_from([0.0, -0.0, 1, 1.0, True, False, "1", "", 2**63, -(2**64), HUGE, "\ud800",
                             "\u00e9\U0001f600", Role.ADMIN, Level.HIGH, Text("1"), Int(1), Int(2**70),
                             Float(-0.0), Float("inf")])
          | st.binary(max_size=2))
value_keys = st.text(max_size=4) | st.sampled_from(["a", "b", "\ud800", Text("a")])
hostile_keys = value_keys | st.integers(0, 2) | st.none()
trees = st.recursive(
    leaves,
    lambda c: st.one_of(st.lists(c, max_size=3), st.lists(c, max_size=3).map(tuple),
                        st.dictionaries(value_keys, c, max_size=3), st.dictionaries(st.text(max_size=3), c, max_size=3),
                        st.lists(c, max_size=3), st.dictionaries(hostile_keys, c, max_size=2)),
    max_leaves=12)
values = trees | st.integers(MAX_DEPTH - 1, MAX_DEPTH + 1).map(nested)
mappings = (st.dictionaries(value_keys, values, max_size=6)
            | st.dictionaries(st.text(max_size=3), values, max_size=6)
            | st.dictionaries(value_keys | st.integers(max_value=3), values, max_size=3))
json_trees = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                          | st.text(max_size=6),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                          max_leaves=12)


def dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@SETTINGS
@given(changes=mappings)
def test_encode_changes_same(core_impl, changes) -> None:
    result = outcome(core_impl.encode_changes, changes)
    assert result == outcome(PURE.encode_changes, changes)
    for key, value in changes.items():
        assert outcome(core_impl.check_value, key, value) == outcome(PURE.check_value, key, value)
        single = outcome(PURE.encode_changes, {key: value})
        assert outcome(core_impl.check_value, key, value) == (("ok", None) if single[0] == "ok" else single)
    if result[0] == "ok":  # json agrees on every stored value
        for (key, value), encoded in zip(changes.items(), result[1][1::2]):
            assert encoded == (b"" if value is None else dumps(value))


@SETTINGS
@given(changes=st.dictionaries(st.text(max_size=6), json_trees, max_size=6))
def test_json_values_round_trip(core_impl, changes) -> None:
    out = core_impl.encode_changes(changes)
    assert out == PURE.encode_changes(changes)
    assert [json.loads(k) for k in out[0::2]] == list(changes)
    assert [None if v == b"" else json.loads(v) for v in out[1::2]] == list(changes.values())


@SETTINGS
@given(old=mappings, new=mappings, overlap=st.booleans())
def test_diff_same(core_impl, old, new, overlap) -> None:
    if overlap:
        new = {**old, **new}
    assert outcome(core_impl.diff, old, new) == outcome(PURE.diff, old, new)
    snap = core_impl.snapshot(old)
    assert snap is not old and list(snap) == list(old)
    assert repr(snap) == repr(PURE.snapshot(old))
    assert outcome(core_impl.diff, snap, old) == outcome(PURE.diff, PURE.snapshot(old), old)


def containers(value, depth=0):
    """The lists and dicts inside ``value`` (not below MAX_DEPTH levels)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list):
        yield value
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from containers(item, depth + 1)
    elif isinstance(value, dict):
        yield value
        for item in value.values():
            yield from containers(item, depth + 1)


@SETTINGS
@given(stored=st.dictionaries(st.text(max_size=4), json_trees, max_size=5), data=st.data())
def test_diff_after_in_place_changes(core_impl, stored, data) -> None:
    """A session as loaded, changed in place; the change set applied to the stored data (as the
    set script does) gives the new data, and both twins make the same change set."""
    snap, pure_snap = core_impl.snapshot(stored), PURE.snapshot(stored)
    new = json.loads(json.dumps(stored))
    found = [c for v in new.values() for c in containers(v)]
    for _ in range(data.draw(st.integers(0, 3))):
        if not found:
            break
        target = data.draw(st.sampled_from(found))
        item = data.draw(json_trees | leaves)
        if isinstance(target, list):
            op = data.draw(st.sampled_from(["append", "pop", "set"]))
            if op == "append" or not target:
                target.append(item)
            elif op == "pop":
                target.pop()
            else:
                target[data.draw(st.integers(0, len(target) - 1))] = item
        else:
            key = data.draw(st.text(max_size=3) | st.sampled_from(list(target) or ["x"]))
            if data.draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = item
    result = outcome(core_impl.diff, snap, new)
    assert result == outcome(PURE.diff, pure_snap, new)
    if result[0] != "ok":
        return
    state = {k: v for k, v in stored.items() if v is not None}
    pairs = result[1]
    for i in range(0, len(pairs), 2):
        if pairs[i + 1] == b"":
            state.pop(json.loads(pairs[i]), None)
        else:
            state[json.loads(pairs[i])] = json.loads(pairs[i + 1])
    want = {k: v for k, v in new.items() if v is not None}
    assert {k: dumps(v) for k, v in state.items()} == {k: dumps(v) for k, v in want.items()}


@SETTINGS
@given(data=st.dictionaries(st.text(max_size=4), json_trees, max_size=5),
       separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
       ensure_ascii=st.booleans(), indent=st.sampled_from([None, None, 1, "\t"]))
def test_parse_nested_json_same(core_impl, data, separators, ensure_ascii, indent) -> None:
    """Nested JSON text as json.dumps writes it: both twins give what json.loads gives (types,
    key order and the sign of zero included: compared by repr)."""
    text = json.dumps(data, separators=separators, ensure_ascii=ensure_ascii, indent=indent)
    want = json.loads(text)
    for d in (text.encode(), text):
        reply = [b"u", 1, 2, 3, 4, b"ip", d, 0]
        got, pure = core_impl.parse_session(reply), PURE.parse_session(reply)
        assert repr(got) == repr(pure)
        assert repr(got.get("d", {})) == repr(want)


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
