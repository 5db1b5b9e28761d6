"""Node redis-sessions' validation rules and messages, for every argument of the manager.

Each check returns the normalized value or raises ``ValidationError`` with Node's code and
message, so bad input never reaches Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeGuard

from ._constants import (
    DEVICE_HANDLE_BYTES,
    MAX_ID_LENGTH,
    MAX_IP_LENGTH,
    MAX_SESSIONS,
    MAX_TTL,
    MAX_USER_AGENT,
    MIN_TTL,
)
from .errors import ValidationError

_APP = re.compile(r"[A-Za-z0-9_-]{3,20}")
_TOKEN = re.compile(r"[A-Za-z0-9]{64}")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029]")
_HANDLE = re.compile(f"[0-9a-f]{{{2 * DEVICE_HANDLE_BYTES}}}")
# what a stored User-Agent never keeps: control characters and lone surrogates
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

def _missing(value: object) -> bool:
    return value is None or value == ""


def is_app(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a valid app name (no exception: for names from requests)."""
    return isinstance(value, str) and _APP.fullmatch(value) is not None


def app(value: object) -> str:
    if _missing(value):
        raise ValidationError("missingParameter", "No app supplied")
    if not is_app(value):
        raise ValidationError("invalidFormat", "Invalid app format")
    return value


def token(value: object) -> str:
    if _missing(value):
        raise ValidationError("missingParameter", "No token supplied")
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValidationError("invalidFormat", "Invalid token format")
    return value


def user_id(value: object, *, max_length: int | None = MAX_ID_LENGTH) -> str:
    """A user id: 1-128 characters without a line break; ints are accepted and made str.

    Lookups pass ``max_length=None``: Node's own pattern (``/^(.*?){1,128}$/``) lets longer ids
    through, and sessions Node created for them must stay reachable from Python.
    """
    if _missing(value):
        raise ValidationError("missingParameter", "No id supplied")
    if isinstance(value, int) and not isinstance(value, bool):
        # an int id as text; one too long to be an id is refused before it is written out
        value = str(value) if value.bit_length() <= 1024 else None
    if (
        not isinstance(value, str)
        or (max_length is not None and len(value) > max_length)
        or _LINE_BREAK.search(value)
        or not _is_unicode(value)
    ):
        raise ValidationError("invalidFormat", "Invalid id format")
    return value


def ip(value: object) -> str:
    if _missing(value):
        raise ValidationError("missingParameter", "No ip supplied")
    if not isinstance(value, str) or len(value) > MAX_IP_LENGTH or not _is_unicode(value):
        raise ValidationError("invalidFormat", "Invalid ip format")
    return value


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be sent as UTF-8 (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: object, name: str) -> int:
    """A whole number of seconds in [MIN_TTL, MAX_TTL]; below it Node's message, above it ours."""
    if not _whole_number(value) or value < MIN_TTL:  # type: ignore[operator]
        raise ValidationError("invalidValue", f"{name} must be a positive integer >= {MIN_TTL}")
    if value > MAX_TTL:  # type: ignore[operator]
        raise ValidationError(
            "invalidValue", f"{name} must be a positive integer >= {MIN_TTL} and <= {MAX_TTL}"
        )
    return value  # type: ignore[return-value]


def ttl(value: object) -> int:
    """A session's ttl in seconds: MIN_TTL to MAX_TTL."""
    return _seconds(value, "ttl")


def dt(value: object) -> int:
    """A look-back window (Node's deltaTime) in seconds: MIN_TTL to MAX_TTL."""
    return _seconds(value, "deltaTime")


def max_sessions(value: object) -> int:
    """0 (no cap) or a whole number of sessions per user id, 1 to MAX_SESSIONS."""
    if value is None:
        return 0
    if not _whole_number(value) or value < 1:  # type: ignore[operator]
        raise ValidationError("invalidValue", "max_sessions must be a positive integer")
    if value > MAX_SESSIONS:  # type: ignore[operator]
        raise ValidationError(
            "invalidValue", f"max_sessions must be a positive integer <= {MAX_SESSIONS}"
        )
    return value  # type: ignore[return-value]


def data(value: object) -> Mapping[str, object]:
    """The ``d`` of set(): a non-empty mapping (value types are checked when it is encoded)."""
    if value is None:
        raise ValidationError("missingParameter", "No d supplied")
    if not isinstance(value, Mapping):
        raise ValidationError("invalidValue", "d must be an object")
    if not value:
        raise ValidationError("invalidValue", "d must containt at least one key.")
    return value


def user_agent(value: object) -> str:
    """A User-Agent to record with a sign-in: its first MAX_USER_AGENT characters, control
    characters and lone surrogates replaced by "?" ("" records none)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError("invalidFormat", "Invalid user agent format")
    return _NOT_PRINTABLE.sub("?", value[:MAX_USER_AGENT])


def is_device_handle(value: object) -> TypeGuard[str]:
    """Whether ``value`` has the form of a device handle (no exception: for form input)."""
    return isinstance(value, str) and _HANDLE.fullmatch(value) is not None


def device_handle(value: object) -> str:
    if _missing(value):
        raise ValidationError("missingParameter", "No device handle supplied")
    if not is_device_handle(value):
        raise ValidationError("invalidFormat", "Invalid device handle format")
    return value


_CONTROL = re.compile(rb"[\x00-\x1f]")
# what core's encoder writes for most keys and values: ASCII text without escapes, a number, a
# literal; checked by one match (anything else is decoded)
_PLAIN_KEY = re.compile(rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"')
_PLAIN_VALUE = re.compile(rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"|-?(?:0|[1-9][0-9]*)'
                          rb'(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null')


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_text(item: object) -> tuple[object, bool]:
    """The value of one encoded JSON text (bytes or str) and whether it is one, exactly: no
    surrounding whitespace, no raw control characters, valid UTF-8, no NaN/Infinity."""
    raw = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
    if not isinstance(raw, bytes) or _CONTROL.search(raw):
        return None, False
    try:
        text = raw.decode("utf-8")
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, nesting beyond any limit
        return None, False
    return value, end == len(text)


def changes(pairs: Sequence[bytes]) -> Sequence[bytes]:
    """A change set as ``core.diff``/``core.encode_changes`` make it: pairs of a JSON string (a
    key) and exactly one JSON value, or empty (delete the key). Anything else would be spliced
    into the stored JSON and make the session unreadable, so it is refused here (and again by
    the scripts) before anything is written."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)):  # str too
        raise ValidationError("invalidValue", "changes must be a list of encoded pairs")
    if len(pairs) % 2:
        raise ValidationError("invalidValue", "changes must be pairs of a key and a value")
    for i in range(0, len(pairs), 2):
        key, value = pairs[i], pairs[i + 1]
        if not (type(key) is bytes and _PLAIN_KEY.fullmatch(key)):
            name, ok = _json_text(key)
            if not ok or not isinstance(name, str):
                raise ValidationError("invalidValue",
                                      f"change {i // 2}: the key is not a JSON string")
        if type(value) is bytes and (not value or _PLAIN_VALUE.fullmatch(value)):
            continue
        if value != "" and not _json_text(value)[1]:
            name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            raise ValidationError("invalidValue",
                                  f"change {i // 2} (key {name}): the value is not one JSON value")
    return pairs
