"""Fuzz the signature check: core.unsign (and sign round trips).

    python fuzz/fuzz_unsign.py -max_total_time=60

Never raises on str, both twins agree, and a value is accepted only when it is exactly
sign(token, key) for one of the keys.
"""

import atheris

from _common import _pycore, main, same

KEYS = (b"k1", b"another key", bytes(range(256)))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:  # arbitrary text
        value = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    elif mode == 1:  # latin-1 bytes, as WSGI delivers
        value = fdp.ConsumeBytes(fdp.remaining_bytes()).decode("latin-1")
    else:  # a real signed value, mutated at one position
        token = _pycore.new_token()
        value = _pycore.sign(token, KEYS[fdp.ConsumeIntInRange(0, 2)])
        if mode == 3 and value:
            i = fdp.ConsumeIntInRange(0, len(value) - 1)
            value = value[:i] + fdp.ConsumeUnicodeNoSurrogates(2) + value[i + 1 :]
    result = same("unsign", value, KEYS)[1]
    if result is not None:
        assert any(_pycore.sign(result, key) == value for key in KEYS), value
    assert same("unsign", value, ())[1] is None


if __name__ == "__main__":
    main(test_one_input)
