"""The pure-Python core: tokens, cookie signing, cookie extraction, reply parsing, change sets.

The compiled twin (``_core/_core.pyx``, built as ``redis_sessions._core``) has the same names and
gives the same results; ``tests/core`` runs every test against both. This module is also what type
checkers read. It imports nothing from the package but ``errors`` and ``_constants``.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring as _json_string  # ensure_ascii=False semantics

from ._constants import (
    BASE36_DIGITS,
    TOKEN_ALPHABET,
    TOKEN_LENGTH,
    TOKEN_RANDOM_LENGTH,
    TOKEN_SEPARATOR,
)
from .errors import forbidden_type, key_not_text, not_finite, not_unicode

__all__ = [
    "new_token",
    "token_from_random",
    "is_token",
    "sign",
    "unsign",
    "cookie_value",
    "extract_token",
    "pack_command",
    "parse_session",
    "encode_changes",
    "snapshot",
    "diff",
]

# Rejection sampling without modulo bias: a byte b is used only when b < 244 (= 61 * 4), and then
# maps to TOKEN_ALPHABET[b % 61]. Both tables are derived from TOKEN_ALPHABET, not written out.
_ALPHABET_SIZE = len(TOKEN_ALPHABET)
_ACCEPT_BELOW = 256 - 256 % _ALPHABET_SIZE
_LETTER_OF_BYTE = bytes(
    ord(TOKEN_ALPHABET[b % _ALPHABET_SIZE]) if b < _ACCEPT_BELOW else 0 for b in range(256)
)
_REJECTED_BYTES = bytes(range(_ACCEPT_BELOW, 256))
_SIGNATURE_LENGTH = 43  # base64 of a SHA-256 digest without its "=" padding


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(BASE36_DIGITS[r])
    return "".join(reversed(digits))


def token_from_random(random: bytes, ms: int) -> str | None:
    """The deterministic part of ``new_token``: 55 letters from ``random``, "Z", base36(``ms``).

    Returns None when ``random`` holds fewer than 55 accepted bytes (each byte >= 244 is skipped).
    """
    data = memoryview(random).tobytes()
    if type(ms) is bool or not isinstance(ms, int):
        raise TypeError(f"ms must be an int, got {type(ms).__name__}")
    if ms < 0:
        raise ValueError("ms must be >= 0")
    letters = data.translate(_LETTER_OF_BYTE, _REJECTED_BYTES)
    if len(letters) < TOKEN_RANDOM_LENGTH:
        return None
    return letters[:TOKEN_RANDOM_LENGTH].decode("ascii") + TOKEN_SEPARATOR + _base36(ms)


def new_token() -> str:
    """A new 64-character session token from ``os.urandom`` and the current time in ms."""
    random = os.urandom(TOKEN_LENGTH)
    ms = time.time_ns() // 1_000_000
    while True:
        token = token_from_random(random, ms)
        if token is not None:
            return token
        random += os.urandom(TOKEN_LENGTH - TOKEN_RANDOM_LENGTH)


def is_token(value: object) -> bool:
    """True iff ``value`` is a str of 64 ASCII letters and digits (Node's ``^[A-Za-z0-9]{64}$``)."""
    return (
        isinstance(value, str)
        and len(value) == TOKEN_LENGTH
        and value.isascii()
        and value.isalnum()
    )


def _signature(token: str, key: bytes) -> str:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key: expected bytes or bytearray, got {type(key).__name__}")
    digest = hmac.digest(key, token.encode("utf-8"), "sha256")
    return base64.b64encode(digest).decode("ascii")[:_SIGNATURE_LENGTH]


def sign(token: str, key: bytes) -> str:
    """``token.<signature>`` as express's cookie-signature makes it (HMAC-SHA256, base64, no =)."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    return token + "." + _signature(token, key)


def unsign(value: str, keys: Sequence[bytes]) -> str | None:
    """The token of a signed value when one of ``keys`` signed it, else None (never raises on str).

    The first key signs and every key verifies, so keys can be rotated.
    """
    if not isinstance(value, str):
        return None
    token, dot, signature = value.rpartition(".")
    if not dot or not is_token(token) or not signature.isascii():
        return None
    for key in keys:
        if hmac.compare_digest(_signature(token, key), signature):
            return token
    return None


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of the first cookie called ``name`` in a raw ``Cookie`` header, or None.

    Pairs are split at ";", names and values stripped of spaces and tabs, one pair of double
    quotes around a value removed; pairs without "=" are skipped; no percent-decoding.
    """
    if header is None:
        return None
    if not isinstance(header, str):
        raise TypeError(f"header must be a str or None, got {type(header).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in header:
        return None
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip(" \t") == name:
            value = value.strip(" \t")
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def extract_token(header: str | None, name: str, keys: Sequence[bytes] | None) -> str | None:
    """The session token of a request: the cookie ``name``, verified with ``keys`` when given."""
    value = cookie_value(header, name)
    if value is None:
        return None
    if keys:
        return unsign(value, keys)
    return value if is_token(value) else None


def pack_command(args: Sequence[bytes | str | int]) -> bytes:
    """One RESP command (an array of bulk strings); str is UTF-8, int is decimal, else TypeError."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        else:
            raise TypeError(f"pack_command: cannot send {type(arg).__name__}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _text(item: object) -> str | None:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(item, str):
        return item
    return None


def _is_int(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def parse_session(reply: object) -> dict | None:
    """Node's session dict from the reply of the session scripts; None for no session or garbage.

    ``reply`` is ``[id, r, w, ttl, idle, ip, d, no_resave]`` (bytes or str for the texts).
    """
    if not isinstance(reply, list) or len(reply) != 8:
        return None
    id_, r, w, ttl, idle, ip, d, no_resave = reply
    sid = _text(id_)
    if sid is None:
        return None
    if not (_is_int(r) and _is_int(w) and _is_int(ttl) and _is_int(idle) and _is_int(no_resave)):
        return None
    if ip is None:
        ip_text: str | None = ""
    else:
        ip_text = _text(ip)
        if ip_text is None:
            return None
    session: dict = {"id": sid, "r": r, "w": w, "ttl": ttl, "idle": idle, "ip": ip_text}
    if d is not None:
        d_text = _text(d)
        if d_text is None:
            return None
        try:
            data = json.loads(d_text)
        except (ValueError, RecursionError):
            return None
        if type(data) is not dict:
            return None
        if data:
            session["d"] = data
    if no_resave == 1:
        session["no_resave"] = True
    return session


def _utf8(text: str, key: object) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise not_unicode(key) from None


def _encode_pair(key: object, value: object, out: list[bytes]) -> None:
    if not isinstance(key, str):
        raise key_not_text(key)
    out.append(_utf8(_json_string(key), key))
    if value is None:
        out.append(b"")
    elif isinstance(value, str):
        out.append(_utf8(_json_string(value), key))
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(int.__repr__(value).encode("ascii"))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise not_finite(key)
        out.append(float.__repr__(value).encode("ascii"))
    else:
        raise forbidden_type(key)


def encode_changes(changes: Mapping[str, object]) -> list[bytes]:
    """``[key_json, value_json, ...]`` in mapping order; a None value becomes ``b""`` (delete)."""
    out: list[bytes] = []
    for key, value in changes.items():
        _encode_pair(key, value, out)
    return out


def snapshot(data: Mapping[str, object]) -> dict:
    """A copy of a session's data as loaded, for ``diff`` (the values are immutable scalars)."""
    return dict(data)


def _same(old: object, new: object) -> bool:
    """Equal and of the same type; 0.0 and -0.0 differ (they encode differently)."""
    if type(old) is not type(new):
        return False
    if type(new) is float:
        return old == new and math.copysign(1.0, old) == math.copysign(1.0, new)  # type: ignore[arg-type]
    return bool(old == new)


def diff(snapshot: Mapping[str, object], data: Mapping[str, object]) -> list[bytes]:
    """The encoded change set from ``snapshot`` to ``data``: changed or added keys in ``data``
    order, then deleted keys (missing or None in ``data``) in ``snapshot`` order."""
    out: list[bytes] = []
    missing = object()
    for key, value in data.items():
        if value is None:
            continue
        old = snapshot.get(key, missing)
        if old is missing or old is None or not _same(old, value):
            _encode_pair(key, value, out)
    for key, old in snapshot.items():
        if old is not None and data.get(key) is None:
            _encode_pair(key, None, out)
    return out
