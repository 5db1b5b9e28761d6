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
    MAX_DEPTH,
    TOKEN_ALPHABET,
    TOKEN_LENGTH,
    TOKEN_RANDOM_LENGTH,
    TOKEN_SEPARATOR,
)
from .errors import (
    forbidden_type,
    key_not_text,
    not_finite,
    not_unicode,
    number_too_large,
    too_deep,
)

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
    "check_value",
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


def _int_text(value: int, key: object) -> bytes:
    try:
        return int.__repr__(value).encode("ascii")
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        raise number_too_large(key) from None


def _encode_value(value: object, key: object, depth: int, out: list[bytes]) -> None:
    """Appends the JSON of ``value`` to ``out``; ``depth`` counts the containers around it and
    ``key`` is the top-level key, named by every error. Checks in this order, depth first."""
    if isinstance(value, str):
        out.append(_utf8(_json_string(value), key))
    elif value is None:
        out.append(b"null")
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int):
        out.append(_int_text(value, key))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise not_finite(key)
        out.append(float.__repr__(value).encode("ascii"))
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise too_deep(key)
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _encode_value(item, key, depth + 1, out)
        out.append(b"]")
    elif isinstance(value, (dict, Mapping)):
        if depth >= MAX_DEPTH:
            raise too_deep(key)
        out.append(b"{")
        for i, (k, item) in enumerate(value.items()):
            if not isinstance(k, str):
                raise key_not_text(k, key)
            if i:
                out.append(b",")
            out.append(_utf8(_json_string(k), key))
            out.append(b":")
            _encode_value(item, key, depth + 1, out)
        out.append(b"}")
    else:
        raise forbidden_type(key)


def _encode_pair(key: object, value: object, out: list[bytes]) -> None:
    if not isinstance(key, str):
        raise key_not_text(key)
    out.append(_utf8(_json_string(key), key))
    if value is None:
        out.append(b"")
    elif type(value) is str:
        out.append(_utf8(_json_string(value), key))
    else:
        parts: list[bytes] = []
        _encode_value(value, key, 0, parts)
        out.append(b"".join(parts))


def encode_changes(changes: Mapping[str, object]) -> list[bytes]:
    """``[key_json, value_json, ...]`` in mapping order; a None value becomes ``b""`` (delete).

    Values: None (JSON null inside containers), bool, int, finite float, str, list, tuple (an
    array), dict or any Mapping with str keys, nested up to MAX_DEPTH levels; subclasses of str,
    int and float are stored as their base value. Anything else is a ValidationError naming the
    top-level key (the first problem met, depth first, in iteration order).
    """
    out: list[bytes] = []
    for key, value in changes.items():
        _encode_pair(key, value, out)
    return out


def check_value(key: object, value: object) -> None:
    """Raises the ValidationError ``encode_changes({key: value})`` would raise; else None."""
    if type(key) is str and key.isascii():
        t = type(value)
        if t is str:
            if value.isascii():  # type: ignore[attr-defined]
                return None
        elif t is int:
            if value.bit_length() < 64:  # type: ignore[attr-defined]
                return None
        elif t is float:
            if math.isfinite(value):  # type: ignore[arg-type]
                return None
        elif t is bool or value is None:
            return None
    _encode_pair(key, value, [])
    return None


def _copy(value: object, depth: int) -> object:
    if isinstance(value, (str, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return value
        return [_copy(item, depth + 1) for item in value]
    if isinstance(value, (dict, Mapping)):
        if depth >= MAX_DEPTH:
            return value
        return {k: _copy(item, depth + 1) for k, item in value.items()}
    return value


def snapshot(data: Mapping[str, object]) -> dict:
    """A copy of a session's data for ``diff``, untouched by later in-place changes to ``data``.

    Dicts and other Mappings become new dicts, lists and tuples new lists, down to MAX_DEPTH
    levels (deeper containers are shared); everything else (scalars) is shared.
    """
    return {key: _copy(value, 0) for key, value in data.items()}


def _same(old: object, new: object, depth: int) -> bool:
    """True iff ``old`` and ``new`` have the same JSON encoding: 1, 1.0 and True differ, so do
    0.0 and -0.0; a tuple equals a list with the same items, a str subclass its text. Key order
    counts. Containers deeper than MAX_DEPTH are the same only when they are the same object."""
    if isinstance(new, str):
        return isinstance(old, str) and str.__eq__(old, new) is True
    if new is True or new is False or old is True or old is False:
        return old is new
    if isinstance(new, int):
        return isinstance(old, int) and int.__eq__(old, new) is True
    if isinstance(new, float):
        return (
            isinstance(old, float)
            and float.__eq__(old, new) is True
            and math.copysign(1.0, old) == math.copysign(1.0, new)
        )
    if new is None:
        return old is None
    if isinstance(new, (list, tuple)):
        if depth >= MAX_DEPTH:
            return old is new
        if not isinstance(old, (list, tuple)) or len(old) != len(new):
            return False
        return all(_same(a, b, depth + 1) for a, b in zip(old, new))
    if isinstance(new, (dict, Mapping)):
        if depth >= MAX_DEPTH:
            return old is new
        if not isinstance(old, (dict, Mapping)) or len(old) != len(new):
            return False
        for (old_key, a), (new_key, b) in zip(old.items(), new.items()):
            if not (isinstance(old_key, str) and isinstance(new_key, str)):
                return False
            if str.__eq__(old_key, new_key) is not True or not _same(a, b, depth + 1):
                return False
        return True
    return False  # not storable: reported as changed, so that encoding it raises


def diff(snapshot: Mapping[str, object], data: Mapping[str, object]) -> list[bytes]:
    """The encoded change set from ``snapshot`` to ``data``: changed or added keys in ``data``
    order, then deleted keys (missing or None in ``data``) in ``snapshot`` order. Values are
    compared deeply (see ``_same``): a value is unchanged iff it would encode the same."""
    out: list[bytes] = []
    missing = object()
    for key, value in data.items():
        if value is None:
            continue
        old = snapshot.get(key, missing)
        if old is missing or old is None or not _same(old, value, 0):
            _encode_pair(key, value, out)
    for key, old in snapshot.items():
        if old is not None and data.get(key) is None:
            _encode_pair(key, None, out)
    return out
