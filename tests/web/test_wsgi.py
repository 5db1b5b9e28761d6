"""SessionMiddleware under a bare WSGI callable, against a real Redis (issue 4, points 1-6)."""

from __future__ import annotations

import logging

import pytest
from werkzeug.test import Client

from redis_sessions import core
from redis_sessions.errors import BackendUnavailable, ValidationError
from redis_sessions.session import UNKNOWN_IP
from redis_sessions.wsgi import SessionMiddleware, get_session

from .conftest import APP, cookie_of, routes, set_cookies


def app_doing(action):
    """A WSGI app that calls ``action(session, environ)`` before start_response."""

    def wsgi_app(environ, start_response):
        result = action(get_session(environ), environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(result).encode()]

    return wsgi_app


def login(client, user="alice"):
    response = client.get(f"/?upgrade={user}")
    assert response.text == f"LOGGED IN - USER: {user}"
    return cookie_of(response)


# -- 1. the cookie ------------------------------------------------------------------------------


def test_cookie_is_named_after_the_app_and_carries_the_bare_token(client, rs):
    token = login(client)
    assert core.is_token(token)
    assert rs.get(APP, token)["id"] == "alice"  # what Node's connect-redis-sessions reads
    header = set_cookies(client.get("/?upgrade=alice"))[0]
    assert header.startswith(f"{APP}=") and "; Path=/" in header and "; HttpOnly" in header
    assert "; SameSite=Lax" in header and "Max-Age" not in header


def test_a_cookie_written_by_node_is_read(make_app, rs):
    token = rs.create(APP, "fromnode", "10.0.0.1", d={"lang": "de"})
    client = Client(make_app(app_doing(lambda s, e: (s.user_id, dict(s)))))
    client.set_cookie(APP, token)
    assert client.get("/").text == repr(("fromnode", {"lang": "de"}))


def test_signed_cookies_verify_with_every_key_and_sign_with_the_first(make_app, rs):
    client = Client(make_app(secret_keys=["new", b"old"]))
    value = login(client)
    token, _, _ = value.partition(".")
    assert value == core.sign(token, b"new")
    assert client.get("/").text == "USER: alice"
    other = Client(make_app(secret_keys=["newer", "new"]))  # rotated: the old key still verifies
    other.set_cookie(APP, value)
    assert other.get("/").text == "USER: alice"
    bare = Client(make_app(secret_keys=["new"]))
    bare.set_cookie(APP, token)  # the bare token is refused when cookies are signed
    assert bare.get("/").text == "UNKOWN"


def test_secret_keys_must_be_a_list():
    with pytest.raises(TypeError):
        SessionMiddleware(app_doing(None), app_name=APP, redis="redis://x", secret_keys="key")


def test_request_outside_the_cookie_path_is_passed_through(make_app, command_counter):
    seen = []
    client = Client(make_app(app_doing(lambda s, e: seen.append(s)), cookie={"path": "/app"}))
    client.set_cookie(APP, "A" * 64, path="/")
    counter = command_counter()
    response = client.get("/other")
    assert counter.count == 0 and seen == [None] and not set_cookies(response)
    client.get("/app/x")
    client.get("/app")
    assert seen[1] is not None and seen[2] is not None


def test_callable_app_name(make_app, rs):
    names = {"/a": APP, "/b": "otherapp"}
    client = Client(make_app(app_name=lambda environ: names.get(environ["PATH_INFO"])))
    assert client.get("/a?upgrade=alice").text == "LOGGED IN - USER: alice"
    assert client.get("/c").text == "UNKOWN"
    assert cookie_of(client.get("/b?upgrade=bob"), "otherapp")


# -- 2. round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cookie",
    [None, "", "garbage", "A" * 63, "A" * 65, "A" * 63 + "!", "A" * 64 + ".badsignature"],
)
@pytest.mark.parametrize("signed", [False, True])
def test_no_redis_command_without_a_well_formed_cookie(make_app, command_counter, cookie, signed):
    client = Client(make_app(secret_keys=["k"] if signed else None))
    client.get("/")  # warm up the connection and the scripts
    if cookie is not None:
        client.set_cookie(APP, cookie)
    counter = command_counter()
    assert client.get("/").text == "UNKOWN"
    assert counter.count == 0


def test_one_round_trip_to_load_none_more_when_unchanged(client, command_counter):
    login(client)
    counter = command_counter()
    assert client.get("/").text == "USER: alice"
    assert counter.count == 1


def test_one_more_round_trip_to_save_a_change(client, command_counter):
    login(client)
    client.get("/?save=1&warm=up")  # the first use of the set script loads it
    counter = command_counter()
    assert client.get("/?save=1&a=1").text.startswith("USER: alice\nSAVED:")
    assert counter.count == 2
    counter = command_counter()
    client.get("/?save=1&a=1")  # the same value again: nothing to save
    assert counter.count == 1


def test_lazy_loads_on_first_access(make_app, command_counter):
    touched = {"yes": False}

    def action(session, environ):
        return session.get("x") if touched["yes"] else None

    client = Client(make_app(lazy=True))
    login(client)
    lazy_client = Client(make_app(app_doing(action), lazy=True))
    lazy_client.set_cookie(APP, client.get_cookie(APP).value)
    counter = command_counter()
    lazy_client.get("/")
    assert counter.count == 0
    touched["yes"] = True
    counter = command_counter()
    lazy_client.get("/")
    assert counter.count == 1


# -- 3. when the save happens -------------------------------------------------------------------


def test_save_happens_before_start_response(client, make_app, rs):
    token = login(client)
    order = []

    def inner(environ, start_response):
        get_session(environ)["k"] = "v"
        start_response("200 OK", [])
        order.append(rs.get(APP, token).get("d"))
        return [b""]

    c = Client(make_app(inner))
    c.set_cookie(APP, token)
    c.get("/")
    assert order == [{"k": "v"}]


class FailingSaves:
    """A manager whose saves fail as if Redis went away; everything else is the real one."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def apply_changes(self, *args, **kwargs):
        raise BackendUnavailable("connection refused (test)")


def test_failed_save_in_raise_mode_fails_before_headers(client, rs):
    token = login(client)
    started = []

    def inner(environ, start_response):
        get_session(environ)["k"] = "v"
        return start_response("200 OK", []) and [b"ok"]

    app = SessionMiddleware(inner, app_name=APP, sessions=FailingSaves(rs), on_backend_error="raise")
    environ = {"HTTP_COOKIE": f"{APP}={token}", "PATH_INFO": "/", "REMOTE_ADDR": "1.2.3.4"}
    with pytest.raises(BackendUnavailable):
        app(environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == []


def test_failed_save_in_anonymous_mode_is_logged(client, rs, caplog):
    token = login(client)
    app = SessionMiddleware(
        app_doing(lambda s, e: s.__setitem__("k", "v")), app_name=APP, sessions=FailingSaves(rs)
    )
    c = Client(app)
    c.set_cookie(APP, token)
    with caplog.at_level(logging.ERROR, logger="redis_sessions"):
        assert c.get("/").status_code == 200
    assert any(r.levelno == logging.ERROR and "could not save" in r.message for r in caplog.records)


def test_streaming_changes_are_saved_when_the_body_is_closed(client, make_app, rs):
    token = login(client)

    def streaming(environ, start_response):
        session = get_session(environ)
        start_response("200 OK", [])
        yield b"a"
        session["during"] = "stream"
        yield b"b"

    c = Client(make_app(streaming))
    c.set_cookie(APP, token)
    assert c.get("/", buffered=True).data == b"ab"  # buffered: the client closes the body
    assert rs.get(APP, token)["d"] == {"during": "stream"}


def test_an_exception_in_the_app_saves_nothing_unless_saved(client, make_app, rs):
    token = login(client)

    def failing(environ, start_response):
        session = get_session(environ)
        session["saved"] = 1
        session.save()
        session["lost"] = 1
        raise RuntimeError("boom")

    c = Client(make_app(failing))
    c.set_cookie(APP, token)
    with pytest.raises(RuntimeError):
        c.get("/")
    assert rs.get(APP, token)["d"] == {"saved": 1}


def test_an_exception_while_streaming_saves_nothing(client, make_app, rs):
    token = login(client)

    def failing(environ, start_response):
        session = get_session(environ)
        start_response("200 OK", [])
        session["lost"] = 1
        yield b"a"
        raise RuntimeError("boom")

    c = Client(make_app(failing))
    c.set_cookie(APP, token)
    with pytest.raises(RuntimeError):
        c.get("/", buffered=True)
    assert "d" not in rs.get(APP, token)


# -- 4. upgrade, destroy, ttl, max_age, stale cookies --------------------------------------------


def test_upgrade_never_adopts_the_incoming_token_and_moves_anonymous_data(make_app, rs):
    def action(session, environ):
        session["cart"] = 3
        session.upgrade("alice")
        return session.id

    c = Client(make_app(app_doing(action)))
    c.set_cookie(APP, "B" * 64)  # an attacker-chosen token
    response = c.get("/")
    token = cookie_of(response)
    assert token != "B" * 64 and response.text == repr(token)
    assert rs.get(APP, token)["d"] == {"cart": 3}
    assert rs.get(APP, "B" * 64) is None


def test_upgrade_over_another_users_session_replaces_it(client, rs):
    old = login(client, "alice")
    new = login(client, "bob")
    assert new != old and rs.get(APP, old) is None and rs.get(APP, new)["id"] == "bob"
    assert rs.soid(APP, "alice") == []
    assert client.get("/").text == "USER: bob"


def test_destroy_and_destroyall_expire_the_cookie(make_app, rs):
    browsers = [Client(make_app()) for _ in range(3)]
    for browser in browsers:
        login(browser)
    response = browsers[0].get("/?destroy=1")
    assert response.text == "killed + 1"
    assert cookie_of(response) == "" and "Max-Age=0" in set_cookies(response)[0]
    assert "Expires=Thu, 01 Jan 1970" in set_cookies(response)[0]
    response = browsers[1].get("/?destroyall=1")
    assert response.text == "USER: alice\n2" and cookie_of(response) == ""
    assert browsers[2].get("/").text == "UNKOWN"


def test_ttl_below_10_is_clamped_with_a_warning(make_app, rs, caplog):
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        app = make_app(ttl=3)
    assert app.ttl == 10 and "ttl" in caplog.text
    c = Client(app)
    token = login(c)
    assert rs.get(APP, token)["ttl"] == 10
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        token = cookie_of(c.get("/?upgrade=bob&ttl=5"))
    assert rs.get(APP, token)["ttl"] == 10 and "ttl" in caplog.text


def test_with_max_age_the_cookie_is_resent_when_saved(make_app):
    c = Client(make_app(cookie={"max_age": 3600}))
    token = login(c)
    response = c.get("/")
    assert set_cookies(response) == []
    response = c.get("/?save=1&a=1")
    assert cookie_of(response) == token and "Max-Age=3600; Expires=" in set_cookies(response)[0]


def test_a_stale_cookie_gives_an_anonymous_session_and_is_expired(client, rs):
    token = login(client)
    rs.kill(APP, token)
    response = client.get("/")
    assert response.text == "UNKOWN" and cookie_of(response) == ""


def test_cookie_options(make_app):
    c = Client(make_app(cookie={"domain": "example.org", "secure": True, "samesite": "Strict",
                                "httponly": False}))
    header = set_cookies(c.get("/?upgrade=alice"))[0]
    assert "; Domain=example.org; Secure; SameSite=Strict" in header and "HttpOnly" not in header


def test_regenerate_gives_a_new_token_with_the_same_data(client, make_app, rs):
    token = login(client)
    client.get("/?save=1&a=x")
    c = Client(make_app(app_doing(lambda s, e: s.regenerate().id)))
    c.set_cookie(APP, token)
    new = cookie_of(c.get("/"))
    assert new != token and rs.get(APP, token) is None
    assert rs.get(APP, new)["d"] == {"a": "x"} and rs.get(APP, new)["id"] == "alice"


def test_reload_drops_unsaved_changes(client, make_app):
    token = login(client)

    def action(session, environ):
        session["a"] = 1
        session.reload()
        return dict(session)

    c = Client(make_app(app_doing(action)))
    c.set_cookie(APP, token)
    assert c.get("/").text == "{}"


def test_session_mapping_rules(client, make_app):
    token = login(client)
    results = {}

    def action(session, environ):
        session["s"], session["i"], session["f"], session["b"] = "x", 1, 1.5, True
        session["s"] = None  # deletes
        session["missing"] = None  # deleting what is not there is fine
        deep: list = []
        for _ in range(40):
            deep = [deep]
        # refused when assigned, never later inside the save (issue 10, defect 6)
        for bad in (b"x", float("nan"), object(), "\ud800", {"k": "\udfff"}, 10**5000, deep,
                    {1: "int key"}, [float("inf")]):
            with pytest.raises(ValidationError) as info:
                session["bad"] = bad
            assert "bad" in str(info.value)
        session["nested"] = {"list": [1, {"x": None}], "t": (1, 2)}  # JSON values are fine
        results["keys"] = sorted(session)
        results["meta"] = session.meta
        results["manager"] = session.manager
        return None

    c = Client(make_app(app_doing(action)))
    c.set_cookie(APP, token)
    c.get("/")
    assert results["keys"] == ["b", "f", "i", "nested"]
    assert set(results["meta"]) >= {"id", "r", "w", "ttl", "idle", "ip"}


def test_with_anonymous_off_anonymous_data_is_not_stored(make_app, command_counter):
    c = Client(make_app(app_doing(lambda s, e: s.__setitem__("a", 1)), anonymous=False))
    c.get("/")
    counter = command_counter()
    response = c.get("/")
    assert counter.count == 0 and not set_cookies(response)


# -- 5. client ip --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trust", "environ", "expected"),
    [
        (False, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}, "10.0.0.1"),
        (True, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.1.1.1, 2.2.2.2"}, "2.2.2.2"),
        (2, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.1.1.1, 2.2.2.2"}, "1.1.1.1"),
        (3, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.1.1.1, 2.2.2.2"}, "10.0.0.1"),
        (True, {"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1"),
        (False, {}, UNKNOWN_IP),
        (False, {"REMOTE_ADDR": "x" * 40}, UNKNOWN_IP),
        (True, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "y" * 40}, UNKNOWN_IP),
    ],
)
def test_client_ip(make_app, rs, trust, environ, expected):
    app = make_app(trust_proxy=trust)
    assert app.client_ip(environ) == expected
    headers = {"PATH_INFO": "/", "QUERY_STRING": "upgrade=alice", **environ}
    headers.setdefault("REMOTE_ADDR", None)
    out = []
    body = app(headers, lambda status, h, exc_info=None: out.extend(h))
    assert b"".join(body) == b"LOGGED IN - USER: alice"
    token = dict(out)["Set-Cookie"].split(";")[0].split("=")[1]
    assert rs.get(APP, token)["ip"] == expected


# -- 6. Redis down -------------------------------------------------------------------------------


@pytest.fixture
def own_server():
    from tests.redis_server import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


def test_redis_down_anonymous_mode_logs_once_and_recovers(own_server, caplog):
    from redis_sessions import RedisSessions

    manager = RedisSessions(own_server.url, namespace="down", wipe=0)
    app = SessionMiddleware(routes, app_name=APP,
                            sessions=manager)
    c = Client(app)
    token = login(c)
    own_server.stop()
    with caplog.at_level(logging.INFO, logger="redis_sessions"):
        assert c.get("/").text == "UNKOWN"
        assert c.get("/").text == "UNKOWN"
    outages = [r for r in caplog.records if "unavailable" in r.message.lower()]
    assert len(outages) == 1
    assert c.get_cookie(APP).value == token  # the cookie survives an outage
    own_server.start()  # an empty server: the session is gone, but requests work again
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="redis_sessions"):
        assert c.get("/").text == "UNKOWN"
    assert "reachable again" in caplog.text
    login(c, "bob")
    assert c.get("/").text == "USER: bob"
    manager.close()


def test_redis_down_raise_mode_propagates(own_server):
    from redis_sessions import RedisSessions

    manager = RedisSessions(own_server.url, namespace="down", wipe=0)
    c = Client(SessionMiddleware(routes, app_name=APP, sessions=manager, on_backend_error="raise"))
    login(c)
    own_server.stop()
    with pytest.raises(BackendUnavailable):
        c.get("/")
    manager.close()


def test_host_prefixed_cookie_round_trip(rs) -> None:
    """cookie={"name_prefix": "__Host-"}: the cookie is __Host-<app>, Secure, Path=/, no Domain."""
    from redis_sessions import SessionMiddleware, get_session

    def app(environ, start_response):
        session = get_session(environ)
        if environ["PATH_INFO"] == "/login":
            session.upgrade("user1")
        start_response("200 OK", [])
        return [str(session.user_id).encode()]

    mw = SessionMiddleware(app, app_name="hostapp", sessions=rs,
                           cookie={"name_prefix": "__Host-", "secure": True})
    seen = {}

    def start(status, headers, exc_info=None):
        seen["headers"] = headers

    body = b"".join(mw({"PATH_INFO": "/login", "REMOTE_ADDR": "1.2.3.4"}, start))
    assert body == b"user1"
    cookie = dict(seen["headers"])["Set-Cookie"]
    assert cookie.startswith("__Host-hostapp=") and "; Secure" in cookie and "; Path=/" in cookie
    assert "Domain" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    env = {"PATH_INFO": "/", "REMOTE_ADDR": "1.2.3.4", "HTTP_COOKIE": f"__Host-hostapp={token}"}
    assert b"".join(mw(env, start)) == b"user1"
    # the unprefixed name is not read: a cookie planted without the prefix is ignored
    env["HTTP_COOKIE"] = f"hostapp={token}"
    assert b"".join(mw(env, start)) == b"None"


@pytest.mark.parametrize("options", [{"name_prefix": "__Host-"},
                                     {"name_prefix": "__Host-", "secure": True, "path": "/x"},
                                     {"name_prefix": "__Host-", "secure": True, "domain": "a.com"},
                                     {"name_prefix": "__Other-", "secure": True}])
def test_bad_cookie_prefix_options(options) -> None:
    from redis_sessions.cookies import CookieOptions

    with pytest.raises(ValueError):
        CookieOptions(options)


def test_invalid_app_name_from_the_request_means_no_session_handling(rs, command_counter) -> None:
    """app_name taken from the URL path (as in Node's example): a path that makes no valid app
    name gets no session handling, never an error, and costs no Redis command."""
    from redis_sessions import SessionMiddleware, get_session

    def app(environ, start_response):
        start_response("200 OK", [])
        return [repr(get_session(environ)).encode()]

    mw = SessionMiddleware(app, sessions=rs,
                           app_name=lambda environ: environ["PATH_INFO"].split("/")[1] or None)
    token = rs.create("goodapp", "user1", "1.2.3.4")
    counter = command_counter()
    for path in ("/x/", "/has space/", "/" + "a" * 21 + "/", "/é-app/"):
        env = {"PATH_INFO": path, "REMOTE_ADDR": "1.2.3.4", "HTTP_COOKIE": f"x={token}"}
        assert b"".join(mw(env, lambda *a: None)) == b"None"
    assert counter.count == 0
