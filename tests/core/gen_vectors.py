"""Writes vectors.json: inputs and the pure twin's answers, checked against both twins by
test_vectors.py. Run ``python tests/core/gen_vectors.py`` after a deliberate behaviour change.

Encoding: bytes are {"$bytes": hex}; an expected exception is {"$raises": type name}.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from redis_sessions import _pycore as core
from redis_sessions._constants import MAX_DEPTH

KEY, OLD = b"vector key", b"old key"
T = "Vt0ken" * 10 + "Zabc"
S = core.sign(T, KEY)


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def enc(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return {"$bytes": obj.hex()}
    if isinstance(obj, (list, tuple)):
        return [enc(x) for x in obj]
    if isinstance(obj, dict):
        return {k: enc(v) for k, v in obj.items()}
    return obj


def case(fn: str, *args: Any) -> dict[str, Any]:
    try:
        result = enc(getattr(core, fn)(*args))
    except Exception as exc:  # noqa: BLE001
        result = {"$raises": type(exc).__name__}
    return {"args": enc(list(args)), "result": result}


def build() -> dict[str, list[dict[str, Any]]]:
    headers = [None, "", f"app={T}", f"xapp=1; app={T}", f' app = "{T}" ', f"app={S}",
               f'app="{S}"', f"a=1;app={S};app=2", "app", "app=;", "=\x00; app=\ud800",
               f"app={T}\x00", "app=\u00e9" * 3, ";" * 50, f"APP={T}", f"app\t=\t{S[:-1]}"]
    cookies = [case("cookie_value", h, "app") for h in headers]
    tokens = [case("extract_token", h, "app", k) for h in headers for k in (None, [KEY], [OLD, KEY])]
    return {
        "token_from_random": [case("token_from_random", bytes(range(i, i + 64)), ms)
                              for i in (0, 100, 180, 190, 192)
                              for ms in (0, 35, 1_700_000_000_000, 2**60, 36**13)],
        "sign": [case("sign", t, k) for t in (T, "", "\u00e9", "x" * 100) for k in (KEY, b"", b"k" * 99)],
        "unsign": [case("unsign", v, [KEY]) for v in
                   (S, S[:-1], S + "x", T, "." + S, S.replace(".", ".."), S[:-1] + "\u00e9",
                    "a" * 63 + S[64:], S.upper(), "\ud800" + S)]
                  + [case("unsign", S, keys) for keys in ([], [OLD], [OLD, KEY], [KEY, OLD])],
        "cookie_value": cookies,
        "extract_token": tokens,
        "pack_command": [case("pack_command", a) for a in
                         ([], ["SET", b"k", 1], ["\u00e9", -(2**70), b"\r\n"], [1.5], [True], [None],
                          [2**63 - 1, -(2**63), 2**63, 0, -1, 10, b""], list(range(-9, 12)), ["\ud800"])],
        "parse_session": [case("parse_session", r) for r in (
            None,
            [b"u", 1, 2, 3, 4, b"ip", b'{"a":1,"b":[1,2],"c":"\\u00e9"}', 1],
            ["u", 1, 2, 3, 4, "ip", '{"a":1.5e3}', 0],
            [b"u", 1, 2, 3, 4, None, b"{}", 0],
            [b"u", 1, 2, 3, 4, None, b"[]", 0],
            [b"u", 1, 2, 3, 4, None, b"{bad", 0],
            [b"\xff", 1, 2, 3, 4, None, None, 0],
            [b"u", b"1", 2, 3, 4, None, None, 0],
            [b"u", 1, 2, 3, 4, None, None],
            # flat objects (the compiled core parses these itself) and near misses (json.loads)
            [b"u", 1, 2, 3, 4, b"ip", b' {"s":"x\xc3\xa9","i":-12,"f":-0.0,"e":1E+2,"t":true,"n":null} ', 1],
            [b"u", 1, 2, 3, 4, None, b'{"big":123456789012345678901234567890,"max":9223372036854775808}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":1,"a":2.5,"b":false}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":"\xff"}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":"\x1f"}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":1,}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":01}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":"\\n"}', 0],
            # nested values (json's path) and the empty id of an anonymous session
            [b"", 1, 2, 3, 4, None, b'{"cart":[1,{"x":[null,true,-0.0,"\xc3\xa9"]}],"n":{}}', 0],
            ["", 1, 2, 3, 4, "", '{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":[1,2', 0],
            # nested values the compiled core parses itself: escapes, surrogate pairs, floats
            [b"u", 1, 2, 3, 4, None, b'{"c":[{"s":"a-1","q":2,"p":9.99},{"s":"\\ud83d\\ude00\\n","q":-0,"p":-0.0}],'
             b'"p":{"t":["x","\\ud800","\\u00e9\xc3\xa9"],"l":{"d":1e22,"e":1e23,"ok":true}},"p":[]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":[0.1,123456789012345.6,1234567890123456.7,2.5e-323,1.7976931348623157e308]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":{"b":[1,{"c":"\\ud800\\u0041\\/\\b\\f\\r\\t"}]}}', 0],
            # and near misses (json.loads decides): Infinity, bad escapes, bad UTF-8 deep inside
            [b"u", 1, 2, 3, 4, None, b'{"a":[1,-Infinity]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":{"b":"\\x"}}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":[{"b":"\xed\xa0\x80"}]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":[1,]}', 0],
            [b"u", 1, 2, 3, 4, None, b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}", 0],
        )],
        "encode_changes": [case("encode_changes", c) for c in (
            {"a": "x", "b": 1, "c": 1.5, "d": True, "e": False, "f": None, "g": 10**25, "h": 1e-7},
            {"q": 'say "hi"\\\n\t\x1f\u00e9\u20ac'}, {"k": [1]}, {"k": "\ud800"}, {"k": float("inf")},
            {"l": [1, "a", None, True, 1.5, -0.0, 2**70, [], {}], "o": {"\u00e9": {"x": [{"y": "\n"}]}}},
            {"deep": nested(MAX_DEPTH)}, {"deep": nested(MAX_DEPTH + 1)}, {"k": {"a": "\ud800"}},
            {"k": [1, b"x"]}, {"k": {"a": [float("inf")]}},
        )],
        "check_value": [case("check_value", k, v) for k, v in (
            ("k", 1), ("k", "\u00e9"), ("k", None), (1, "x"), ("\ud800", 1), ("k", [1, {"a": None}]),
            ("k", nested(MAX_DEPTH + 1)), ("k", {"a": b"x"}), ("k", -0.0), ("k", float("-inf")),
        )],
        "snapshot": [case("snapshot", d) for d in (
            {}, {"a": 1, "l": [1, [2, {"x": [3]}]], "t": [1], "n": None}, {"deep": nested(MAX_DEPTH + 2)},
        )],
        "diff": [case("diff", s, d) for s, d in (
            ({"a": 1}, {"a": 1}), ({"a": 1}, {"a": True}), ({"a": 1}, {"a": 1.0}),
            ({"a": 0.0}, {"a": -0.0}), ({"a": "x", "b": 2}, {"b": 2, "c": 3}),
            ({"a": 1}, {"a": None}), ({"l": [1, {"x": 2}]}, {"l": [1, {"x": 2}]}),
            ({}, {"z": None}), ({"a": 1, "b": 2}, {"b": 3, "a": 1}),
            ({"l": [1, 2]}, {"l": [1, 2, 3]}), ({"o": {"a": 1, "b": 2}}, {"o": {"b": 2, "a": 1}}),
            ({"o": {"a": [1]}}, {"o": {"a": [1.0]}}), ({"o": {"a": [0.0]}}, {"o": {"a": [-0.0]}}),
            ({"o": {"a": [True]}}, {"o": {"a": [1]}}), ({"o": {"a": [None]}}, {"o": {"a": []}}),
            ({"o": {"a": 1}}, {"o": {"a": 1}, "p": [b"x"]}), ({"d": nested(MAX_DEPTH)}, {"d": nested(MAX_DEPTH)}),
            ({"d": nested(MAX_DEPTH)}, {"d": nested(MAX_DEPTH + 1)}),
        )],
    }


if __name__ == "__main__":
    path = pathlib.Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {path}")
