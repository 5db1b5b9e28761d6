"""Cookie options, Set-Cookie headers and the signing glue of the session cookie.

The cookie is named after the app and carries the token: bare (what Node's connect-redis-sessions
reads and writes) or, with secret keys, ``token.signature`` as express's cookie-signature makes it.
Everything that can be computed once (the attribute suffix, the keys as bytes) is computed here at
start-up, so a request only concatenates strings.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from time import time

from . import core

__all__ = ["CookieOptions", "secret_keys", "cookie_value", "EXPIRED"]

logger = logging.getLogger("redis_sessions")

#: what expires a cookie at once (older browsers ignore Max-Age, so Expires too)
EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"

_OPTIONS = ("max_age", "path", "domain", "secure", "httponly", "samesite", "name_prefix")
# RFC 6265bis cookie name prefixes: browsers accept such a cookie only when it is Secure, and for
# __Host- also without Domain and with Path=/ (so no other host or path can plant it)
_NAME_PREFIXES = ("", "__Secure-", "__Host-")
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
# what no string option may hold (RFC 6265: attribute values are ASCII without controls or ';'):
# a CR/LF would split the Set-Cookie header, a ';' would add attributes; a domain is one host name
_STRING_OPTIONS = ("path", "domain", "samesite", "name_prefix")
_UNSAFE = re.compile(r"[^\x20-\x7e]|;")
_UNSAFE_DOMAIN = re.compile(r"[^\x21-\x7e]|[;,]")


def _check_strings(options: Mapping[str, object]) -> None:
    """Refuse a string option holding what could break or extend the Set-Cookie header."""
    for option in _STRING_OPTIONS:
        value = options.get(option)
        if not isinstance(value, str):
            continue
        if option == "domain":
            if _UNSAFE_DOMAIN.search(value):
                raise ValueError(
                    "cookie domain must be printable ASCII without spaces, ',' or ';': "
                    f"{value!r}"
                )
        elif _UNSAFE.search(value):
            raise ValueError(
                f"cookie {option} must be printable ASCII without control characters or ';': "
                f"{value!r}"
            )


class CookieOptions:
    """``max_age=None, path="/", domain=None, secure=False, httponly=True, samesite="Lax",
    name_prefix=""``.

    ``max_age`` (seconds or a timedelta) makes a persistent cookie that is re-sent whenever the
    session is written; None makes a browser-session cookie. The cookie is named after the app;
    ``name_prefix`` ("__Host-" or "__Secure-") puts a browser-enforced prefix in front.
    """

    __slots__ = (*_OPTIONS, "path_prefix", "_flags")

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        options = dict(options or {})
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"unknown cookie option(s): {', '.join(sorted(unknown))}")
        _check_strings(options)
        max_age = options.get("max_age")
        if isinstance(max_age, datetime.timedelta):
            max_age = int(max_age.total_seconds())
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool)):
            raise TypeError("cookie max_age must be a number of seconds, a timedelta or None")
        self.max_age: int | None = max_age
        path = options.get("path") or "/"
        if not isinstance(path, str) or not path.startswith("/") or ";" in path:
            raise ValueError(f"cookie path must start with '/' and hold no ';': {path!r}")
        self.path: str = path
        domain = options.get("domain")
        if domain is not None and (not isinstance(domain, str) or ";" in domain):
            raise ValueError(f"invalid cookie domain: {domain!r}")
        self.domain: str | None = domain
        self.secure = bool(options.get("secure", False))
        self.httponly = bool(options.get("httponly", True))
        samesite = options.get("samesite", "Lax")
        if samesite is not None:
            if str(samesite).lower() not in _SAMESITE:
                raise ValueError(f"cookie samesite must be 'Lax', 'Strict', 'None' or None: {samesite!r}")
            samesite = _SAMESITE[str(samesite).lower()]
            if samesite == "None" and not self.secure:
                logger.warning("cookie samesite='None' without secure=True: browsers drop it")
        self.samesite: str | None = samesite
        name_prefix = options.get("name_prefix") or ""
        if name_prefix not in _NAME_PREFIXES:
            raise ValueError(f"cookie name_prefix must be '__Host-', '__Secure-' or '': {name_prefix!r}")
        if name_prefix and not self.secure:
            raise ValueError(f"a {name_prefix} cookie needs secure=True")
        if name_prefix == "__Host-" and (domain or path != "/"):
            raise ValueError("a __Host- cookie needs path='/' and no domain")
        self.name_prefix: str = name_prefix
        # a request path must start with this to be inside the cookie's path (RFC 6265 5.1.4);
        # None for "/", which every path is inside
        self.path_prefix: str | None = None if path == "/" else path.rstrip("/") + "/"
        flags = f"; Path={path}"
        if domain:
            flags += f"; Domain={domain}"
        if self.secure:
            flags += "; Secure"
        if self.httponly:
            flags += "; HttpOnly"
        if samesite:
            flags += f"; SameSite={samesite}"
        self._flags = flags

    def name(self, app: str) -> str:
        """The cookie's name for ``app``."""
        return self.name_prefix + app if self.name_prefix else app

    def in_path(self, environ: Mapping[str, str]) -> bool:
        """Whether the request's path is inside the cookie's path (browsers send it there only)."""
        prefix = self.path_prefix
        if prefix is None:
            return True
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        return path.startswith(prefix) or path == prefix[:-1]

    def set_header(self, name: str, value: str) -> str:
        """The Set-Cookie value that stores ``value`` (with Max-Age and Expires when max_age)."""
        max_age = self.max_age
        if max_age is None:
            return f"{name}={value}{self._flags}"
        expires = formatdate(time() + max_age, usegmt=True)
        return f"{name}={value}; Max-Age={max_age}; Expires={expires}{self._flags}"

    def expire_header(self, name: str) -> str:
        """The Set-Cookie value that makes the browser drop the cookie now."""
        return f"{name}=; {EXPIRED}{self._flags}"


def secret_keys(keys: Iterable[str | bytes] | None) -> tuple[bytes, ...] | None:
    """The keys as UTF-8 bytes, the signing key first; None when cookies are not signed."""
    if keys is None:
        return None
    if isinstance(keys, (str, bytes, bytearray)):
        raise TypeError("secret_keys must be a list of keys (the first signs), not one key")
    out = tuple(k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys)
    if not out or not all(out):
        raise ValueError("secret_keys must hold at least one non-empty key")
    return out


def cookie_value(token: str, keys: tuple[bytes, ...] | None) -> str:
    """The cookie value for ``token``: the bare token, or signed with the first key."""
    return token if keys is None else core.sign(token, keys[0])
