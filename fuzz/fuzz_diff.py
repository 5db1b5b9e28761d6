"""Fuzz the change sets: core.snapshot, core.diff, core.encode_changes and core.check_value.

    python fuzz/fuzz_diff.py -max_total_time=60

Session dicts of JSON-like values: scalars (str incl. lone surrogates, int incl. huge, float incl.
-0.0/nan/inf, bool, None, subclasses of str/int/float), lists, tuples and dicts nested up to a few
levels past MAX_DEPTH (keys now and then not str), forbidden types, containers that hold
themselves; the new data is sometimes the old data changed in place after a snapshot. Both twins
agree (result, or the same ValidationError), and applying the change set to the stored data, as
the set script does, gives the new data.
"""

import json
from enum import IntEnum

import atheris

from _common import TWINS, main, outcome, same

with atheris.instrument_imports():
    from redis_sessions._constants import MAX_DEPTH

ALLOWED = ("ValidationError",)


class Text(str):
    pass


class Level(IntEnum):
    HIGH = 3


class Float(float):
    pass


def scalar(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 8)
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
        return fdp.PickValueInList([0, 0.0, -0.0, 1, 1.0, True, False, "", "1", "true", 2**64, -(2**63)])
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
    if kind == 7:
        return fdp.PickValueInList([Text("1"), Level.HIGH, Float(-0.0), Float("nan"), Text("\ud800")])
    return fdp.PickValueInList([b"x", object(), {1}, 1j])  # forbidden types


def key(fdp: atheris.FuzzedDataProvider, keys: list):
    return fdp.PickValueInList(keys) if fdp.ConsumeIntInRange(0, 15) else fdp.PickValueInList([1, None, Text("a")])


def value(fdp: atheris.FuzzedDataProvider, keys: list, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 9)
    if depth > MAX_DEPTH + 2 or kind < 5:
        return scalar(fdp)
    size = fdp.ConsumeIntInRange(0, 3)
    if kind == 5:
        return [value(fdp, keys, depth + 1) for _ in range(size)]
    if kind == 6:
        return tuple(value(fdp, keys, depth + 1) for _ in range(size))
    if kind == 7:
        return {key(fdp, keys): value(fdp, keys, depth + 1) for _ in range(size)}
    if kind == 8:  # a chain of one-item containers around MAX_DEPTH deep
        inner = value(fdp, keys, MAX_DEPTH + 3)
        for i in range(fdp.ConsumeIntInRange(MAX_DEPTH - 2, MAX_DEPTH + 2) - depth):
            inner = [inner] if i % 2 else {"k": inner}
        return inner
    loop: list = [scalar(fdp)]
    loop.append(loop)
    return loop


def mapping(fdp: atheris.FuzzedDataProvider, keys: list) -> dict:
    return {key(fdp, keys): value(fdp, keys) for _ in range(fdp.ConsumeIntInRange(0, 6))}


def containers(v, depth=0):
    if depth > MAX_DEPTH + 3:
        return
    if isinstance(v, list):
        yield v
    if isinstance(v, (list, tuple)):
        for item in v:
            yield from containers(item, depth + 1)
    elif isinstance(v, dict):
        yield v
        for item in v.values():
            yield from containers(item, depth + 1)


def change_in_place(fdp: atheris.FuzzedDataProvider, data: dict, keys: list) -> None:
    found = [c for v in data.values() for c in containers(v)]
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if not found:
            return
        target = fdp.PickValueInList(found)
        if isinstance(target, list):
            if target and fdp.ConsumeBool():
                target.pop()
            else:
                target.append(value(fdp, keys))
        else:
            target[key(fdp, keys)] = value(fdp, keys)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    keys = [fdp.ConsumeUnicode(4) for _ in range(4)] + ["a", "b"]
    old = mapping(fdp, keys)
    same("encode_changes", old, allowed=ALLOWED)
    for k, v in old.items():
        same("check_value", k, v, allowed=ALLOWED)
    stored = same("encode_changes", old, allowed=ALLOWED)
    if stored[0] == "ok" and fdp.ConsumeBool():  # a session as loaded, then changed in place
        old = {json.loads(stored[1][i]): json.loads(stored[1][i + 1])
               for i in range(0, len(stored[1]), 2) if stored[1][i + 1]}
        new = json.loads(json.dumps(old))
        change_in_place(fdp, new, keys)
    else:
        new = mapping(fdp, keys)
        if fdp.ConsumeBool():
            new = dict(old, **{k: v for k, v in new.items() if isinstance(k, str)})
    snaps = [mod.snapshot(old) for _, mod in TWINS]
    assert all(repr(s) == repr(snaps[0]) for s in snaps), (old, snaps)
    results = [outcome(mod.diff, s, new) for (_, mod), s in zip(TWINS, snaps)]
    assert all(r == results[0] for r in results), (old, new, results)
    result = results[0]
    if result[0] != "ok":
        assert result[1] in ALLOWED, result
        return
    pairs = result[1]
    assert len(pairs) % 2 == 0 and all(isinstance(p, bytes) for p in pairs)
    if same("encode_changes", old, allowed=ALLOWED)[0] != "ok":
        return
    state = {k: json.loads(same("encode_changes", {k: v})[1][1]) for k, v in old.items() if v is not None}
    for i in range(0, len(pairs), 2):
        k = json.loads(pairs[i])
        if pairs[i + 1] == b"":
            state.pop(k, None)
        else:
            state[k] = json.loads(pairs[i + 1])
    want = {k: v for k, v in new.items() if v is not None}
    assert state.keys() == want.keys(), (old, new, pairs)
    for k in want:
        got = json.dumps(state[k], ensure_ascii=False, separators=(",", ":"))
        assert got.encode("utf-8", "surrogatepass") == same("encode_changes", {k: want[k]})[1][1], (k, state[k], want[k])


if __name__ == "__main__":
    main(test_one_input)
