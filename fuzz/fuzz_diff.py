"""Fuzz the change sets: core.diff and core.encode_changes.

    python fuzz/fuzz_diff.py -max_total_time=60

Two session dicts of scalars (str incl. lone surrogates, int incl. huge, float incl. -0.0/nan/inf,
bool, None); both twins agree (result, or the same ValidationError/TypeError), and applying the
change set to the snapshot, as the set script does, gives the new data.
"""

import json
import math

import atheris

from _common import main, same

ALLOWED = ("ValidationError", "TypeError")


def scalar(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 12))  # may hold lone surrogates
    if kind == 1:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 20))
    if kind == 2:
        return fdp.ConsumeFloat()
    if kind == 3:
        return fdp.ConsumeBool()
    if kind == 4:
        return None
    if kind == 5:
        return fdp.PickValueInList([0, 0.0, -0.0, 1, 1.0, True, False, "", "1", "true"])
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
    return fdp.PickValueInList([[], {}, b"x", object()])  # forbidden types


def mapping(fdp: atheris.FuzzedDataProvider, keys: list[str]) -> dict:
    return {fdp.PickValueInList(keys): scalar(fdp) for _ in range(fdp.ConsumeIntInRange(0, 8))}


def same_value(a, b) -> bool:
    if type(a) is not type(b):
        return isinstance(a, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    keys = [fdp.ConsumeUnicode(4) for _ in range(4)] + ["a", "b"]
    old = mapping(fdp, keys)
    new = mapping(fdp, keys)
    same("encode_changes", new, allowed=ALLOWED)
    if fdp.ConsumeBool():
        new = dict(old, **{k: v for k, v in new.items() if isinstance(k, str)})
    result = same("diff", old, new, allowed=ALLOWED)
    if result[0] != "ok":
        return
    pairs = result[1]
    assert len(pairs) % 2 == 0 and all(isinstance(p, bytes) for p in pairs)
    state = {k: v for k, v in old.items() if v is not None}
    for i in range(0, len(pairs), 2):
        key = json.loads(pairs[i])
        if pairs[i + 1] == b"":
            state.pop(key, None)
        else:
            state[key] = json.loads(pairs[i + 1])
    want = {k: v for k, v in new.items() if v is not None}
    assert state.keys() == want.keys(), (old, new, pairs)
    for k in want:
        assert same_value(state[k], want[k]) or (isinstance(want[k], float) and math.isnan(want[k])), (k, state[k], want[k])


if __name__ == "__main__":
    main(test_one_input)
