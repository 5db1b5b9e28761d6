"""Fuzz the reply parser: core.parse_session over replies of any shape.

    python fuzz/fuzz_parse_session.py -max_total_time=60

Replies are lists (mostly of 8 items) of bytes, str, int, None and nested lists, with the data
field often JSON (nested objects and arrays, lone surrogates as escapes or as invalid UTF-8); the parser never raises, returns None or a dict, and both twins agree.
"""

import json

import atheris

from _common import TWINS, main, same


def item(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    if kind == 1:
        return fdp.ConsumeInt(8)
    if kind == 2:
        return None
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 20))
    if kind == 4 and depth < 2:
        return [item(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 5:
        return fdp.ConsumeIntInRange(0, 1)
    return fdp.PickValueInList([True, False, 1.5, b"", b"{}", b"[]", b"null"])


def json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    """A JSON-able value, nested (lists and objects) a few levels deep."""
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 4 else 5)
    if kind <= 5:
        return fdp.PickValueInList([fdp.ConsumeUnicode(8), fdp.ConsumeInt(8), fdp.ConsumeRegularFloat(),
                                    fdp.ConsumeIntInRange(-(2**70), 2**70), True, None])
    if kind == 6:
        return [json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.ConsumeUnicode(6): json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}


def json_text(fdp: atheris.FuzzedDataProvider) -> bytes:
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    obj = {fdp.ConsumeUnicodeNoSurrogates(8): json_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))}
    text = json.dumps(obj, ensure_ascii=fdp.ConsumeBool()).encode("utf-8", "surrogatepass")
    if fdp.ConsumeBool() and text:  # then break it at one byte
        i = fdp.ConsumeIntInRange(0, len(text) - 1)
        text = text[:i] + fdp.ConsumeBytes(1) + text[i + 1 :]
    return text


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 9) == 0:
        reply = item(fdp) if fdp.ConsumeBool() else [item(fdp) for _ in range(fdp.ConsumeIntInRange(0, 10))]
    else:
        reply = [item(fdp) for _ in range(8)]
        if fdp.ConsumeBool():
            reply[1:5] = [fdp.ConsumeIntInRange(0, 10**6) for _ in range(4)]
            reply[7] = fdp.ConsumeIntInRange(0, 1)
        if fdp.ConsumeBool():
            reply[6] = json_text(fdp)
    result = same("parse_session", reply)[1]
    # strictly the same: repr tells 1 from 1.0 and True, 0.0 from -0.0, and shows key order
    assert len({repr(mod.parse_session(reply)) for _, mod in TWINS}) == 1, reply
    assert result is None or isinstance(result, dict)
    if result is not None and "d" in result:
        assert isinstance(result["d"], dict) and result["d"]


if __name__ == "__main__":
    main(test_one_input)
