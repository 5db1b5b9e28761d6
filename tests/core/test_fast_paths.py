"""The compiled core's fast paths against the pure twin: the JSON parser of parse_session (flat
and nested objects; it must fall back to json.loads for anything it does not handle, with
identical results, types included), the buffered randomness of new_token (never shared with a forked child), and the
one-allocation pack_command (same bytes, same exceptions)."""

from __future__ import annotations

import json
import os
import sys
from collections import UserList

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import PURE, outcome

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def strict(obj: object) -> str:
    """A comparison key that tells 1, 1.0, True and 0.0, -0.0 apart (repr keeps order and types)."""
    return repr(obj)


def same_parse(core_impl, d: object) -> None:
    for reply in ([b"u", 1, 2, 3, 4, b"ip", d, 0], ["u", 1, 2, 3, 4, None, d, 1]):
        got, want = outcome(core_impl.parse_session, reply), outcome(PURE.parse_session, reply)
        assert strict(got) == strict(want), (d, got, want)


# ---- parse_session: flat JSON objects

number_texts = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?\Z")
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
                | st.floats() | st.sampled_from([0.0, -0.0, 1e308, 5e-324, 1.0, -1, 2**63, -(2**63)])
                | st.text(max_size=12))
ws = st.text(st.sampled_from(" \t\n\r"), max_size=3)
keys = st.text(max_size=8) | st.sampled_from(["a", "b", "", "\u00e9", "\U0001f600"])
# string literals written by hand: raw control characters, DEL, surrogates (invalid UTF-8 once
# encoded with surrogatepass) and escapes, which json.dumps would never write
raw_strings = st.lists(
    st.sampled_from(["a", "\u00e9", "\x00", "\x1f", "\x7f", "\t", "\n", "\ud800", "\udfff", "\\\"",
                     "\\u00e9", "\\ud83d\\ude00", "\\n", "\\/", "\\x", "\U0001f600"]) | st.characters(),
    max_size=5).map(lambda parts: '"' + "".join(parts).replace('"', "").replace("\\", "") + '"')
raw_escaped = st.lists(st.sampled_from(["a", "\\n", "\\\"", "\\u00e9", "\\ud800", "\\", "\x1f"]),
                       max_size=4).map(lambda parts: '"' + "".join(parts) + '"')


@st.composite
def flat_texts(draw) -> str:
    """A flat JSON object with random whitespace; numbers sometimes written by hand."""
    ascii_ = draw(st.booleans())
    pairs = draw(st.lists(st.tuples(keys, json_scalars | number_texts.map(lambda t: ("raw", t))),
                          max_size=10))
    parts = []
    for key, value in pairs:
        if isinstance(value, tuple):
            value_text = value[1]
        elif draw(st.integers(0, 5)) == 0:
            value_text = draw(raw_strings | raw_escaped)
        else:
            value_text = json.dumps(value, ensure_ascii=ascii_)
        key_text = draw(raw_strings | raw_escaped) if draw(st.integers(0, 5)) == 0 else json.dumps(
            key, ensure_ascii=ascii_)
        parts.append(draw(ws) + key_text + draw(ws) + ":" + draw(ws)
                     + value_text + draw(ws))
    return draw(ws) + "{" + ",".join(parts) + (draw(ws) if not parts else "") + "}" + draw(ws)


@st.composite
def dumped_dicts(draw) -> str:
    data = draw(st.dictionaries(keys, json_scalars, max_size=10))
    separators = draw(st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : "), ("\t,", ":\r\n")]))
    indent = draw(st.sampled_from([None, None, 0, 2, "\t"]))
    return json.dumps(data, ensure_ascii=draw(st.booleans()), separators=separators, indent=indent)


interesting = list(b'"\\{}[],:-+.eE0123456789 \t\n\r\x00\x1f\x7f\x80\xbf\xc3\xa9\xed\xa0\xf0\xfftfnaluINx')


@st.composite
def mutated(draw, texts) -> bytes:
    data = bytearray(draw(texts).encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = bytes([draw(st.sampled_from(interesting))])
        elif op == "delete" and at < len(data):
            del data[at]
        elif op == "replace" and at < len(data):
            data[at] = draw(st.sampled_from(interesting) | st.integers(0, 255))
        elif op == "duplicate":
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
    return bytes(data)


@SETTINGS
@given(text=flat_texts() | dumped_dicts())
def test_flat_objects_same(core_impl, text) -> None:
    same_parse(core_impl, text.encode("utf-8", "surrogatepass"))
    same_parse(core_impl, text)


@SETTINGS
@given(data=mutated(flat_texts() | dumped_dicts()))
def test_mutated_objects_same(core_impl, data) -> None:
    same_parse(core_impl, data)
    same_parse(core_impl, data.decode("utf-8", "surrogateescape"))
    same_parse(core_impl, data.decode("latin-1"))


@pytest.mark.parametrize("text", [
    '{}', ' {} ', '{ }', '{"a":1}', '{"a":-0}', '{"a":-0.0}', '{"a":0.0}', '{"a":1.0}', '{"a":1e400}',
    '{"a":-1e400}', '{"a":1E+2}', '{"a":1e-400}', '{"a":123456789012345678}', '{"a":1234567890123456789}',
    '{"a":-9223372036854775808}', '{"a":999999999999999999}', '{"a":-999999999999999999}',
    '{"a":9999999999999999999}', '{"a":-9999999999999999999}', '{"a":9223372036854775808}', '{"a":99999999999999999999999999999999}', '{"a":' + "9" * 5000 + "}",
    '{"a":0.' + "1" * 70 + "}", '{"a":true,"b":false,"c":null}', '{"a":1,"a":2,"b":3}',
    '{"a":"x","b":"\u00e9\u20ac\U0001f600"}', '{"a":"\\u00e9"}', '{"a":"\\n"}', '{"a":"\t"}',
    '{"a":[1]}', '{"a":{}}', '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":01}',
    '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":+1}', '{"a":-}', '{"a":tru}', '{"a":truee}',
    '{"a":1,}', '{,}', '{"a" 1}', '{"a":1}x', '{"a":1}}', '{"a":1', '{"a', '{', '', ' ', '[]', '1',
    '"a"', 'null', '\ufeff{}', '{"a":1}\x00', '{"\x7f":"\x7f"}', '{"a":"\x1f"}', '\x0c{}',
    '{"a":\u0661}', '{"a":"b"  ,  "c"  :  "d"}',
])
def test_edge_objects_same(core_impl, text) -> None:
    same_parse(core_impl, text.encode("utf-8"))
    same_parse(core_impl, text)


@pytest.mark.parametrize("data", [
    b'{"a":"\xff"}', b'{"\xff":1}', b'{"a":"\xed\xa0\x80"}', b'{"a":1}\xff', b'{"a":"\xc3"}',
    b'{"a":"\xc3\xa9"}', b'{"a":"\xf0\x9f\x98\x80"}', b'\xef\xbb\xbf{}', b'{"a":1} \xc3\xa9',
])
def test_non_utf8_objects_same(core_impl, data) -> None:
    same_parse(core_impl, data)
    same_parse(core_impl, data.decode("utf-8", "surrogateescape"))


def test_flat_object_types(core_impl) -> None:
    got = core_impl.parse_session([b"u", 1, 2, 3, 4, None,
                                   b'{"i":1,"f":1.0,"b":true,"z":-0.0,"n":null,"big":1e400,"s":"\xc3\xa9"}', 0])
    d = got["d"]
    assert [type(v) for v in d.values()] == [int, float, bool, float, type(None), float, str]
    assert str(d["z"]) == "-0.0" and d["big"] == float("inf") and d["s"] == "\u00e9"


# ---- parse_session: nested objects and arrays

@st.composite
def nested_texts(draw, depth: int = 0) -> str:
    """A JSON value written by hand: random whitespace, hand-made numbers and strings (escapes,
    surrogate pairs, raw control characters) at any depth, objects with repeated keys."""
    kind = draw(st.integers(0, 9 if depth < 5 else 5))
    if kind <= 1:
        return json.dumps(draw(json_scalars), ensure_ascii=draw(st.booleans()))
    if kind == 2:
        return draw(number_texts)
    if kind in (3, 4):
        return draw(raw_strings | raw_escaped | surrogate_escapes)
    if kind == 5:
        return draw(st.sampled_from(["true", "false", "null", "[]", "{}", "[ ]", "{ }"]))
    items = draw(st.lists(nested_texts(depth + 1), max_size=4))
    if kind in (6, 7):
        return "[" + ",".join(draw(ws) + item + draw(ws) for item in items) + "]"
    names = [draw(keys.map(json.dumps) | raw_escaped | st.sampled_from(['"a"', '"a"', '"\\u0061"'])) for _ in items]
    return "{" + ",".join(draw(ws) + k + draw(ws) + ":" + draw(ws) + v + draw(ws) for k, v in zip(names, items)) + "}"


surrogate_escapes = st.lists(st.sampled_from(["\\ud83d", "\\ude00", "\\uD83D\\uDE00", "\\ud800\\u0041", "\\udbff\\udfff",
                                              "\\ud800\\ud800\\udc00", "x", "\\u00E9", "\\u12", "\\uzzzz"]),
                             max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
nested_objects = st.builds(lambda ws1, body, ws2: ws1 + body + ws2, ws,
                           nested_texts().filter(lambda t: t.startswith("{")) | st.dictionaries(
                               keys, st.recursive(json_scalars, lambda c: st.lists(c, max_size=3)
                                                  | st.dictionaries(keys, c, max_size=3), max_leaves=15),
                               max_size=6).map(lambda d: json.dumps(d, ensure_ascii=False)), ws)


@SETTINGS
@given(text=nested_objects)
def test_nested_objects_same(core_impl, text) -> None:
    same_parse(core_impl, text.encode("utf-8", "surrogatepass"))
    same_parse(core_impl, text)


@SETTINGS
@given(data=mutated(nested_objects))
def test_mutated_nested_objects_same(core_impl, data) -> None:
    same_parse(core_impl, data)
    same_parse(core_impl, data.decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("text", [
    '{"a":[]}', '{"a":[ ]}', '{"a":[1,]}', '{"a":[,1]}', '{"a":[1 2]}', '{"a":{"b":}}', '{"a":{"b"}}',
    '{"a":[1,[2,[3,{"b":[4.5,-0.0,1e400,"\\u00e9"]}]]]}', '{"a":[1', '{"a":{"b":1}', '{"a":[NaN]}',
    '{"a":{"b":1,"b":[2]},"a":3}', '{"a":["\\ud83d\\ude00","\\ud800","\\udc00\\ud800"]}',
    '{"a":"\\ud800\\u0041"}', '{"a":"\\ud800\\uzzzz"}', '{"a":"\\ud800\\u00"}', '{"a":["\\"\\\\\\/\\b\\f\\n\\r\\t"]}',
    '{"a":[0.1,0.5,9.99,19.98,1e22,1e23,123456789012345.6,1234567890123456.7,4.35e-10,2.5e-323,1.7976931348623157e308]}',
    '{"a":[0.000000000000000000001,100000000000000000000.0,9007199254740993.0,0.30000000000000004]}',
    '{"a":[' + ",".join(["1.5"] * 300) + "]}", '{"a":["' + "\\n\u00e9" * 100 + '"]}',
])
def test_edge_nested_same(core_impl, text) -> None:
    same_parse(core_impl, text.encode("utf-8"))
    same_parse(core_impl, text)


@pytest.mark.parametrize("depth", [1, 30, 33, 100, 400, 5000, 100_000])
def test_deep_nesting_same(core_impl, depth) -> None:
    """Deep arrays and objects: parsed while json parses them, None once it gives up (the
    recursion limit), whichever parser the compiled core used."""
    same_parse(core_impl, ('{"a":' + "[" * depth + "]" * depth + "}").encode())
    same_parse(core_impl, ('{"a":' + '{"b":' * depth + "1" + "}" * depth + "}").encode())


def test_deep_nesting_under_a_low_recursion_limit(core_impl) -> None:
    text = ('{"a":' + "[" * 150 + "]" * 150 + "}").encode()
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(120)
        got = core_impl.parse_session([b"u", 1, 2, 3, 4, None, text, 0])
        want = PURE.parse_session([b"u", 1, 2, 3, 4, None, text, 0])
    finally:
        sys.setrecursionlimit(limit)
    assert got is None and want is None


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=number_texts | st.floats(allow_nan=False, allow_infinity=False).map(repr))
def test_float_tokens_as_float(core_impl, number) -> None:
    """Each number token parses to the very double float() gives (bit for bit, sign of zero too)."""
    got = core_impl.parse_session([b"u", 1, 2, 3, 4, None, ('{"a":[%s]}' % number).encode(), 0])
    want = json.loads(number)
    assert strict(got["d"]["a"][0]) == strict(want)
    if isinstance(want, float):
        assert strict(want) == strict(float(number))


# ---- new_token: the random buffer

def test_tokens_unique_across_refills(core_impl) -> None:
    tokens = [core_impl.new_token() for _ in range(3000)]  # dozens of 4 KiB refills
    assert len({t[:55] for t in tokens}) == len(tokens)
    if hasattr(core_impl, "_forget_random"):
        core_impl._forget_random()
        assert core_impl.is_token(core_impl.new_token())


def _tokens_in_child_and_parent(core_impl, fork) -> tuple[set[str], set[str]]:
    core_impl.new_token()  # the parent's buffer now holds unread bytes
    read_end, write_end = os.pipe()
    pid = fork()
    if pid == 0:  # the child: 100 tokens through the pipe, then leave without any cleanup
        try:
            os.close(read_end)
            os.write(write_end, "\n".join(core_impl.new_token() for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent = {core_impl.new_token() for _ in range(100)}
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    child = set(b"".join(chunks).decode().split("\n"))
    assert len(child) == 100 and all(core_impl.is_token(t) for t in child)
    return {t[:55] for t in parent}, {t[:55] for t in child}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_share_random_bytes(core_impl) -> None:
    parent, child = _tokens_in_child_and_parent(core_impl, os.fork)
    assert not parent & child


@pytest.mark.skipif(sys.platform != "linux", reason="calls libc fork() directly")
def test_libc_fork_does_not_share_random_bytes(core_impl) -> None:
    """A fork that bypasses os.fork (no os.register_at_fork hooks) is caught by pthread_atfork."""
    import ctypes

    libc_fork = ctypes.PyDLL(None).fork  # PyDLL: called with the GIL held
    libc_fork.restype = ctypes.c_int
    parent, child = _tokens_in_child_and_parent(core_impl, libc_fork)
    assert not parent & child


# ---- pack_command

class Str(str):
    def encode(self, *args, **kwargs):  # type: ignore[override]
        return b"sub:" + str.encode(self, *args, **kwargs)


class Bytes(bytes):
    pass


class Int(int):
    pass


pack_items = (st.binary(max_size=20) | st.text(max_size=10) | st.integers()
              | st.sampled_from([0, -1, 9, 10, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**18,
                                 -(10**18), 10**19, True, False, None, 1.5, "\ud800", "", b"", bytearray(b"x"),
                                 Str("s"), Bytes(b"b"), Int(5)]))


@SETTINGS
@given(args=st.lists(pack_items, max_size=40), kind=st.sampled_from([list, tuple, UserList, iter]))
def test_pack_command_containers_same(core_impl, args, kind) -> None:
    if kind is iter:
        got = outcome(core_impl.pack_command, iter(args))
        assert got == outcome(PURE.pack_command, iter(args))
        return
    got = outcome(core_impl.pack_command, kind(args))
    assert got == outcome(PURE.pack_command, kind(args))


def test_pack_command_known(core_impl) -> None:
    assert core_impl.pack_command(()) == b"*0\r\n"
    assert core_impl.pack_command([b"x" * 10, -(2**63), 2**63, "\u00e9"]) == (
        b"*4\r\n$10\r\nxxxxxxxxxx\r\n$20\r\n-9223372036854775808\r\n"
        b"$19\r\n9223372036854775808\r\n$2\r\n\xc3\xa9\r\n")
    assert core_impl.pack_command([Str("a")]) == b"*1\r\n$5\r\nsub:a\r\n"
    assert core_impl.pack_command(list(range(20))) == PURE.pack_command(list(range(20)))
    with pytest.raises(UnicodeEncodeError):
        core_impl.pack_command([b"a", "\ud800"])
    with pytest.raises(TypeError):
        core_impl.pack_command([1, True])
