"""Fuzz the cookie extraction: core.cookie_value and core.extract_token (bare and signed).

    python fuzz/fuzz_extract_token.py -max_total_time=60

Input: a raw Cookie header as a WSGI server hands it over (bytes decoded as latin-1), or any
Unicode text, plus a cookie name. Never raises on str; both twins agree; a token returned is a
64-letter token that was in the header (and, signed, verifies with one of the keys).
"""


import atheris

from _common import _pycore, main, same

KEYS = (b"fuzz-key", b"old-key")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.PickValueInList(["app", "rs", "a", "__Host-app", "x" * 20])
    if fdp.ConsumeBool():
        header = fdp.ConsumeBytes(fdp.remaining_bytes()).decode("latin-1")
    else:
        header = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    # a real token spliced in now and then, so the matching paths run too
    if header and header[0] == "T":
        token = "A" * 55 + "Z" + "1" * 8
        header = header[1:].replace("#", f"{name}={token}").replace("$", f"{name}={_pycore.sign(token, KEYS[1])}")
    value = same("cookie_value", header, name)[1]
    for keys in (None, KEYS):
        result = same("extract_token", header, name, keys)[1]
        if result is not None:
            assert _pycore.is_token(result) and result in header
            if keys:
                assert value is not None and value.startswith(result + ".")
            else:
                assert result == value


if __name__ == "__main__":
    main(test_one_input)
