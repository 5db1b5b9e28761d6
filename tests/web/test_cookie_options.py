"""Cookie options that could split or extend the Set-Cookie header are refused at start-up."""

from __future__ import annotations

import pytest

from redis_sessions import RedisSessions
from redis_sessions.wsgi import SessionMiddleware


def _app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


BAD = [
    # (option, value, with) - "with" is what makes the value unsafe
    ("path", "/app\r\nSet-Cookie: evil=1", "CR LF"),
    ("path", "/app\nX: y", "LF"),
    ("path", "/app\r", "CR"),
    ("path", "/app\x00", "NUL"),
    ("path", "/app\x7f", "DEL"),
    ("path", "/app\t", "tab"),
    ("path", "/app;Domain=evil.com", "semicolon"),
    ("path", "/caf\u00e9", "non-ASCII"),
    ("domain", "example.org\r\nSet-Cookie: evil=1", "CR LF"),
    ("domain", "example.org\x00", "NUL"),
    ("domain", "example.org; Secure", "semicolon"),
    ("domain", "example.org evil.com", "space"),
    ("domain", "example.org,evil.com", "comma"),
    ("domain", "ex\u00e4mple.org", "non-ASCII"),
    ("samesite", "Lax\r\n", "CR LF"),
    ("samesite", "Lax\x00", "NUL"),
    ("samesite", "Lax; Domain=evil.com", "semicolon"),
    ("name_prefix", "__Host-\n", "LF"),
    ("name_prefix", "__Secure-;", "semicolon"),
]


@pytest.mark.parametrize(("option", "value"), [b[:2] for b in BAD],
                         ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_unsafe_string_options_are_refused_naming_the_option(rs: RedisSessions, option, value):
    cookie = {option: value, "secure": True}
    with pytest.raises(ValueError, match=f"^cookie {option} must be printable ASCII") as info:
        SessionMiddleware(_app, app_name="webtest", sessions=rs, cookie=cookie)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("cookie", [
    {"path": "/app/sub-path_1.2~x"},
    {"domain": "example.org"},
    {"domain": ".sub.example-1.org"},
    {"samesite": "strict"},
    {"name_prefix": "__Secure-", "secure": True},
    {"path": "/", "domain": None, "samesite": None, "name_prefix": ""},
])
def test_ordinary_options_are_still_accepted(rs: RedisSessions, cookie):
    middleware = SessionMiddleware(_app, app_name="webtest", sessions=rs, cookie=cookie)
    header = middleware.cookie.set_header("webtest", "x")
    assert "\r" not in header and "\n" not in header
