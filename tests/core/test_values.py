"""Session values as JSON values (nested lists and objects, subclasses of str/int/float) and their
limits (depth, lone surrogates, huge ints, self-reference): encode_changes, check_value, snapshot,
diff and parse_session on both twins, each answer checked against the stdlib json module."""

from __future__ import annotations

import json
import math
from collections import OrderedDict, UserDict, UserList, namedtuple
from types import MappingProxyType
from typing import Any

import pytest

from redis_sessions._constants import MAX_DEPTH
from redis_sessions.errors import (
    ValidationError,
    forbidden_type,
    key_not_text,
    not_finite,
    not_unicode,
    number_too_large,
    too_deep,
)

from .helpers import PURE, Float, Int, Level, Role, Text, nested, outcome

Point = namedtuple("Point", "x y")


def dumps(value: Any) -> bytes:
    """What a stored value must be: compact JSON, UTF-8 kept, no NaN."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# ---- encode_changes: nested values

ROUND_TRIPS = [
    [], {}, [1, "a", None, True, False, 1.5, -0.0, 10**30], {"a": {"b": [1, {"c": None}]}},
    ("t", (1, 2)), {"\u00e9": ["\u2028", "\U0001f600", 'q"\\\n\x00\x1f\x7f']}, [[[]]], {"": ""},
    [{"x": [{"y": []}]}], {"a": 1, "b": [True, {"c": 0.1, "d": 1e16}]}, nested(MAX_DEPTH),
    OrderedDict(b=1, a=2), MappingProxyType({"m": [1]}), Point(1, [2]), [Role.ADMIN, Level.HIGH],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=range(len(ROUND_TRIPS)))
def test_nested_round_trip(core_impl, value) -> None:
    plain = json.loads(dumps(dict(value) if isinstance(value, MappingProxyType) else value))
    out = core_impl.encode_changes({"k": value})
    assert out == [b'"k"', dumps(plain)]
    assert json.loads(out[1]) == plain
    assert core_impl.check_value("k", value) is None


def test_subclasses_are_their_base_value(core_impl) -> None:
    from markupsafe import Markup  # Flask's dependency: in the test environment

    values = {"role": Role.ADMIN, "level": Level.HIGH, "text": Text("t\u00e9"), "int": Int(-7),
              "float": Float(0.5), "html": Markup("<b>x</b>"), Text("key"): Int(2**70),
              "nested": [Role.ADMIN, {Text("k"): Float(-0.0)}, (Level.HIGH,)], "bool": True}
    assert core_impl.encode_changes(values) == [
        b'"role"', b'"admin"', b'"level"', b"3", b'"text"', '"t\u00e9"'.encode(), b'"int"', b"-7",
        b'"float"', b"0.5", b'"html"', b'"<b>x</b>"', b'"key"', str(2**70).encode(),
        b'"nested"', b'["admin",{"k":-0.0},[3]]', b'"bool"', b"true",
    ]
    for key, value in values.items():
        assert core_impl.check_value(key, value) is None


def test_subclasses_in_diff(core_impl) -> None:
    snap = core_impl.snapshot({"r": "admin", "l": 3, "f": 0.5, "n": [3, "admin"], "i": -7})
    data = {"r": Role.ADMIN, "l": Level.HIGH, "f": Float(0.5), "n": (Level.HIGH, Text("admin")),
            "i": Int(-7)}
    assert core_impl.diff(snap, data) == []
    assert core_impl.diff({"t": True}, {"t": Int(1)}) == [b'"t"', b"1"]
    assert core_impl.diff({"t": 1.0}, {"t": Level(3)}) == [b'"t"', b"3"]


def test_containers_accepted_and_not(core_impl) -> None:
    class Listy(list):
        pass

    assert core_impl.encode_changes({"a": UserDict(x=[1]), "b": Listy([1, (2,)])}) == [
        b'"a"', b'{"x":[1]}', b'"b"', b"[1,[2]]"]
    for value in (UserList([1]), range(2), {1, 2}, iter([1]), b"x", bytearray(), 1j):
        with pytest.raises(ValidationError) as info:
            core_impl.encode_changes({"k": [value]})
        assert info.value.message == forbidden_type("k").message


# ---- errors: the exact ValidationError, the same from both twins and from check_value

def self_list() -> list:
    value: list = [1]
    value.append(value)
    return value


def self_dict() -> dict:
    value: dict = {"a": 1}
    value["me"] = {"again": value}
    return value


ERRORS = [
    ({"k": [1, "\ud800"]}, not_unicode("k")),
    ({"k": {"\udfff": 1}}, not_unicode("k")),
    ({"\ud800": [1]}, not_unicode("\ud800")),
    ({"k": {1: 1}}, key_not_text(1, "k")),
    ({"k": [{None: 1}]}, key_not_text(None, "k")),
    ({"k": [math.inf]}, not_finite("k")),
    ({"k": {"x": Float("nan")}}, not_finite("k")),
    ({"k": 10**5000}, number_too_large("k")),
    ({"k": [Int(-(10**5000))]}, number_too_large("k")),
    ({"k": nested(MAX_DEPTH + 1)}, too_deep("k")),
    ({"k": nested(MAX_DEPTH + 1, leaf=b"never reached")}, too_deep("k")),
    ({"k": self_list()}, too_deep("k")),
    ({"k": self_dict()}, too_deep("k")),
    ({"k": [b"x", "\ud800"]}, forbidden_type("k")),  # the first problem met wins
    ({"k": ["\ud800", b"x"]}, not_unicode("k")),
    ({"k": [{"a": b"x"}, {1: 1}]}, forbidden_type("k")),
    ({"ok": [1], 5: 1}, key_not_text(5)),
]


@pytest.mark.parametrize("changes, error", ERRORS, ids=range(len(ERRORS)))
def test_errors(core_impl, changes, error) -> None:
    with pytest.raises(ValidationError) as info:
        core_impl.encode_changes(changes)
    assert (info.value.code, info.value.message) == (error.code, error.message)
    assert outcome(core_impl.encode_changes, changes) == outcome(PURE.encode_changes, changes)
    key, value = list(changes.items())[-1]
    assert outcome(core_impl.check_value, key, value) == outcome(PURE.encode_changes, {key: value})


def test_error_messages() -> None:
    """The wording the lead documents (the key named is always the top-level one)."""
    assert too_deep("cart").message == (
        f"d.cart is nested too deeply (more than {MAX_DEPTH} levels of lists and objects)")
    assert number_too_large("n").message == "d.n holds an integer with too many digits to store"
    assert not_unicode("k").message == "d.'k' is not valid Unicode"
    assert key_not_text(1).message == "d keys must be strings, got int"
    assert key_not_text(1, "cart").message == "d.cart holds a key that is not a string (int)"
    assert not_finite("x").message == "d.x must be a finite number"


def test_depth_limit_exact(core_impl) -> None:
    for depth in range(MAX_DEPTH - 1, MAX_DEPTH + 1):
        for leaf in (1, [], {}):
            value = nested(depth, leaf)
            levels = depth + (leaf != 1)
            if levels <= MAX_DEPTH:
                assert json.loads(core_impl.encode_changes({"k": value})[1]) == value
                assert core_impl.check_value("k", value) is None
            else:
                with pytest.raises(ValidationError, match="nested too deeply"):
                    core_impl.check_value("k", value)


def test_big_ints(core_impl) -> None:
    for value in (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**4299, -(10**4299)):
        assert core_impl.encode_changes({"k": [value]}) == [b'"k"', b"[" + str(value).encode() + b"]"]
        assert core_impl.check_value("k", value) is None
    with pytest.raises(ValidationError, match="too many digits"):
        core_impl.check_value("k", 10**4300)


# ---- check_value

CHECKED = [1, -1, 2**64, 1.5, -0.0, math.nan, "x", "\u00e9", "\ud800", True, None, b"x", [1], {"a": "\ud800"},
           Role.ADMIN, Level.HIGH, Float("inf"), 10**5000, self_list(), nested(MAX_DEPTH + 1), object()]


@pytest.mark.parametrize("key", ["k", "\u00e9", "\ud800", Text("k"), 1, None])
def test_check_value_is_encode_changes(core_impl, key) -> None:
    for value in CHECKED:
        expected = outcome(PURE.encode_changes, {key: value})
        got = outcome(core_impl.check_value, key, value)
        if expected[0] == "ok":
            assert got == ("ok", None), (key, value)
        else:
            assert got == expected, (key, value)


# ---- snapshot and diff

def test_snapshot_is_deep(core_impl) -> None:
    inner = {"y": [1, 2]}
    data = {"s": "x", "i": 10**30, "l": [1, inner], "t": (1, [2]), "m": MappingProxyType({"a": [3]}),
            "deep": nested(MAX_DEPTH + 2, leaf=[0])}
    snap = core_impl.snapshot(data)
    assert type(snap) is dict and snap is not data
    assert snap["s"] is data["s"] and snap["i"] is data["i"]  # scalars shared
    assert snap["l"] == [1, {"y": [1, 2]}] and snap["l"] is not data["l"] and snap["l"][1] is not inner
    assert snap["t"] == [1, [2]] and type(snap["t"]) is list  # tuples become lists
    assert type(snap["m"]) is dict and snap["m"] == {"a": [3]}
    inner["y"].append(3)
    data["t"][1].append(9)
    assert snap["l"] == [1, {"y": [1, 2]}] and snap["t"] == [1, [2]]
    # containers below MAX_DEPTH levels are shared, not copied
    below_snap, below_data = snap["deep"], data["deep"]
    for _ in range(MAX_DEPTH):
        assert below_snap is not below_data
        below_snap = below_snap["k"] if isinstance(below_snap, dict) else below_snap[0]
        below_data = below_data["k"] if isinstance(below_data, dict) else below_data[0]
    assert below_snap is below_data


def test_diff_sees_in_place_changes(core_impl) -> None:
    loaded = {"cart": [1, 2], "prefs": {"theme": "dark", "tags": ["a"]}, "n": 1, "t": [1, 2]}
    data = json.loads(json.dumps(loaded))
    snap = core_impl.snapshot(data)
    assert core_impl.diff(snap, data) == []
    data["cart"].append(3)
    data["prefs"]["tags"][0] = "b"
    data["t"] = (1, 2)  # a tuple with the same items: unchanged
    assert core_impl.diff(snap, data) == [b'"cart"', b"[1,2,3]", b'"prefs"', b'{"theme":"dark","tags":["b"]}']
    del data["prefs"]["theme"]
    data["cart"] = None
    assert core_impl.diff(snap, data) == [b'"prefs"', b'{"tags":["b"]}', b'"cart"', b""]


@pytest.mark.parametrize("old, new, changed", [
    ([1], [1.0], True), ([1], [True], True), ([0.0], [-0.0], True), ({"a": [1]}, {"a": [1]}, False),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),  # key order is part of the encoding
    ([1, 2], (1, 2), False), ([[1]], ((1,),), False), ({"a": None}, {"a": None}, False),
    ({"a": None}, {}, True), ([None], [0], True), ([], {}, True), ([1], [1, 1], True),
    (["x"], [Text("x")], False), ({"k": 1}, {Text("k"): 1}, False), ([2**70], [2**70], False),
    ([math.nan], [math.nan], True),  # nan never equals: encoding it then raises
    ([{"a": {"b": {"c": [1, 2, {"d": False}]}}}], [{"a": {"b": {"c": [1, 2, {"d": 0}]}}}], True),
])
def test_diff_nested_strictness(core_impl, old, new, changed) -> None:
    expected = outcome(PURE.encode_changes, {"v": new})
    got = outcome(core_impl.diff, {"v": old}, {"v": new})
    if changed:
        assert got == (expected if expected[0] != "ok" else ("ok", [b'"v"', dumps(new)]))
    else:
        assert got == ("ok", [])


def test_diff_self_reference_made_in_place(core_impl) -> None:
    data = {"l": [1], "d": {"a": 1}}
    snap = core_impl.snapshot(data)
    data["l"].append(data["l"])
    with pytest.raises(ValidationError, match="nested too deeply"):
        core_impl.diff(snap, data)
    data["l"].pop()
    data["d"]["a"] = data["d"]
    with pytest.raises(ValidationError, match="nested too deeply"):
        core_impl.diff(snap, data)
    assert core_impl.diff(data, data) == []  # the same object all the way down: unchanged


def test_diff_of_too_deep_stored_data(core_impl) -> None:
    """Data stored by another client deeper than MAX_DEPTH: unchanged while untouched, and a
    replacement is refused (changes below MAX_DEPTH levels inside it are not seen)."""
    data = {"deep": json.loads(json.dumps(nested(MAX_DEPTH + 3))), "n": 1}
    snap = core_impl.snapshot(data)
    assert core_impl.diff(snap, data) == []
    data["n"] = 2
    assert core_impl.diff(snap, data) == [b'"n"', b"2"]
    data["deep"] = json.loads(json.dumps(nested(MAX_DEPTH + 3)))
    with pytest.raises(ValidationError, match="nested too deeply"):
        core_impl.diff(snap, data)


# ---- parse_session

def test_parse_session_nested_and_empty_id(core_impl) -> None:
    d = {"cart": [1, {"x": [None, True, 1.5, "\u00e9"]}], "deep": nested(MAX_DEPTH + 5), "s": "t"}
    for id_ in (b"", ""):
        for text in (json.dumps(d).encode(), json.dumps(d, ensure_ascii=False), dumps(d)):
            reply = [id_, 1, 2, 3, 4, None, text, 0]
            got = core_impl.parse_session(reply)
            assert got == PURE.parse_session(reply) == {
                "id": "", "r": 1, "w": 2, "ttl": 3, "idle": 4, "ip": "", "d": d}
            assert repr(got) == repr(PURE.parse_session(reply))
    assert core_impl.parse_session([b"", 0, 0, 10, 0, None, None, 0])["id"] == ""
