"""The one session model under the bare WSGI middleware: anonymous sessions, JSON values, Vary,
and the rotation defects of issue 10 (regenerate/upgrade copy inside Redis; a request in flight
with a rotated token keeps the new cookie and never loses a write silently)."""

from __future__ import annotations

import logging
import threading

import pytest
from werkzeug.test import Client

from redis_sessions.wsgi import SessionMiddleware, get_session

from .conftest import APP, cookie_of, set_cookies
from .test_wsgi import app_doing, login


def doing(action):
    """app_doing(action), and ``/?upgrade=ID`` logs in (what ``login()`` asks for)."""

    def step(session, environ):
        query = environ["QUERY_STRING"]
        if query.startswith("upgrade="):
            session.upgrade(query[len("upgrade="):])
            return f"LOGGED IN - USER: {session.user_id}"
        return action(session, environ)

    app = app_doing(step)

    def wsgi_app(environ, start_response):
        body = app(environ, start_response)
        text = body[0].decode()
        return [text[1:-1].encode()] if text.startswith("'LOGGED IN") else body

    return wsgi_app

# -- issue 9.1: anonymous sessions ---------------------------------------------------------------


def test_a_visitors_first_write_stores_a_session_and_sets_the_cookie(make_app, rs, command_counter):
    app = make_app(app_doing(lambda s, e: s.__setitem__("cart", [1])))
    Client(app).get("/")  # connects and loads the script
    c = Client(app)
    counter = command_counter()
    response = c.get("/")
    assert counter.count == 1  # the first write is one round trip
    token = cookie_of(response)
    assert token and rs.load(APP, token, 60)["d"] == {"cart": [1]}
    assert rs.get(APP, token) is None  # Node's get (and ours) finds no user session there


def test_visits_that_only_read_store_nothing_and_cost_nothing(make_app, command_counter):
    c = Client(make_app(app_doing(lambda s, e: (s.get("x"), "x" in s, len(s)))))
    counter = command_counter()
    response = c.get("/")
    assert counter.count == 0 and set_cookies(response) == []


def test_anonymous_round_trips_per_request(make_app, command_counter):
    def action(session, environ):
        if environ["QUERY_STRING"] == "w":
            session["n"] = session.get("n", 0) + 1
        return session.get("n")

    c = Client(make_app(app_doing(action)))
    c.get("/?w")
    c.get("/?w")  # every script is loaded now
    counter = command_counter()
    assert c.get("/").text == "2"
    assert counter.count == 1  # a cookie loads in one round trip, whatever its kind
    assert counter.writes == []  # within the activity resolution: plain reads only
    counter = command_counter()
    assert c.get("/?w").text == "3"
    assert counter.count == 2


def test_anonymous_sessions_are_invisible_to_user_indexes(make_app, rs, redis_client, namespace):
    c = Client(make_app(app_doing(lambda s, e: s.__setitem__("a", 1))))
    token = cookie_of(c.get("/"))
    assert rs.soapp(APP, 600) == [] and rs.activity(APP, 600) == 0
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{namespace}:*")}
    assert keys == {f"{namespace}:{APP}:an:{token}"}  # no index, no Node-visible hash
    assert 0 < redis_client.ttl(f"{namespace}:{APP}:an:{token}") <= 7200  # Redis expires it


def test_anonymous_ttl_is_the_redis_ttl_and_is_renewed_on_use(make_app, redis_client, namespace):
    c = Client(make_app(app_doing(lambda s, e: s.__setitem__("a", 1)), anonymous_ttl=30))
    token = cookie_of(c.get("/"))
    key = f"{namespace}:{APP}:an:{token}"
    assert 0 < redis_client.ttl(key) <= 30
    redis_client.expire(key, 12)
    c.get("/")
    assert redis_client.ttl(key) > 12


def test_login_moves_anonymous_data_under_a_new_token_and_deletes_the_old(make_app, rs,
                                                                           redis_client, namespace):
    def action(session, environ):
        if "login" in environ["QUERY_STRING"]:
            session["at_login"] = True
            session.upgrade("alice")
        else:
            session["cart"] = {"items": [1, 2]}
        return session.user_id

    c = Client(make_app(app_doing(action)))
    anonymous = cookie_of(c.get("/"))
    response = c.get("/?login")
    token = cookie_of(response)
    assert token != anonymous and response.text == "'alice'"
    assert rs.get(APP, token)["d"] == {"cart": {"items": [1, 2]}, "at_login": True}
    assert not redis_client.exists(f"{namespace}:{APP}:an:{anonymous}")
    assert [s["token"] for s in rs.soid(APP, "alice")] == [token]


def test_emptying_an_anonymous_session_deletes_it_and_the_cookie(make_app, redis_client, namespace):
    def action(session, environ):
        if "clear" in environ["QUERY_STRING"]:
            session.clear()
        else:
            session["a"] = 1

    c = Client(make_app(app_doing(action)))
    token = cookie_of(c.get("/"))
    response = c.get("/?clear")
    assert cookie_of(response) == ""
    assert not redis_client.exists(f"{namespace}:{APP}:an:{token}")


def test_destroy_of_an_anonymous_session(make_app, redis_client, namespace):
    def action(session, environ):
        if "end" in environ["QUERY_STRING"]:
            return session.destroy()
        session["a"] = 1

    c = Client(make_app(app_doing(action)))
    token = cookie_of(c.get("/"))
    response = c.get("/?end")
    assert response.text == "1" and cookie_of(response) == ""
    assert not redis_client.exists(f"{namespace}:{APP}:an:{token}")


# -- issue 9.2 and 9.5: JSON values, in-place changes, Vary ---------------------------------------


def test_nested_values_round_trip_and_in_place_changes_are_saved(make_app, rs):
    def action(session, environ):
        query = environ["QUERY_STRING"]
        if query == "init":
            session["cart"] = [1]
            session["prefs"] = {"theme": {"dark": True}, "t": (1, 2)}
        elif query == "append":
            session["cart"].append(2)  # no modified = True needed
            session["prefs"]["theme"]["dark"] = False
        return session.get("cart"), session.get("prefs")

    c = Client(make_app(doing(action)))
    token = login(c)
    c.get("/?init")
    assert c.get("/?append").text == "([1, 2], {'theme': {'dark': False}, 't': [1, 2]})"
    assert rs.get(APP, token)["d"] == {"cart": [1, 2], "prefs": {"theme": {"dark": False},
                                                                  "t": [1, 2]}}


def test_reading_a_container_without_changing_it_saves_nothing(make_app, command_counter):
    def action(session, environ):
        if environ["QUERY_STRING"] == "init":
            session["cart"] = [1, {"a": 2}]
        return session["cart"]

    c = Client(make_app(doing(action)))
    login(c)
    c.get("/?init")
    counter = command_counter()
    c.get("/")
    assert counter.count == 1


def test_vary_cookie_when_the_session_was_used(make_app):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/use":
            get_session(environ).get("x")
        start_response("200 OK", [("Vary", "Accept-Encoding")])
        return [b""]

    c = Client(make_app(app))
    assert c.get("/use").headers["Vary"] == "Accept-Encoding, Cookie"
    assert c.get("/skip").headers["Vary"] == "Accept-Encoding"


def test_modified_true_saves_everything_and_sends_the_cookie_again(make_app, rs):
    def action(session, environ):
        session.modified = True

    c = Client(make_app(doing(action)))
    token = login(c)
    response = c.get("/")
    assert cookie_of(response) == token
    assert rs.get(APP, token)["w"] == 2


def test_session_ttl_can_be_changed(make_app, rs):
    def action(session, environ):
        session.ttl = 90

    c = Client(make_app(doing(action)))
    token = login(c)
    c.get("/")
    assert rs.get(APP, token)["ttl"] == 90


# -- issue 10.3: regenerate/upgrade copy inside Redis ---------------------------------------------


@pytest.mark.parametrize("rotation", ["regenerate", "upgrade"])
def test_rotation_keeps_a_write_saved_meanwhile_by_another_request(make_app, rs, rotation):
    """The rotating request loaded the session before another request saved a key; the new
    session must hold that key (the copy happens in Redis, not from the request's snapshot)."""
    loaded, written = threading.Event(), threading.Event()

    def rotating(session, environ):
        session.get("x")  # loaded now
        loaded.set()
        written.wait(10)
        if rotation == "regenerate":
            session.regenerate()
        else:
            session.upgrade("alice")
        return session.id

    c = Client(make_app())
    token = login(c)
    rotator = Client(make_app(app_doing(rotating)))
    rotator.set_cookie(APP, token)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=rotator.get("/")))
    thread.start()
    loaded.wait(10)
    rs.set(APP, token, {"saved_meanwhile": 1})  # acknowledged
    written.set()
    thread.join(10)
    new = cookie_of(result["r"])
    assert new != token and rs.get(APP, new)["d"] == {"saved_meanwhile": 1}


def test_regenerate_of_a_no_resave_session_with_little_time_left(make_app, rs, redis_client,
                                                                   namespace):
    token = rs.create(APP, "alice", "10.0.0.1", ttl=12, no_resave=True, d={"a": 1})
    redis_client.hincrby(f"{namespace}:{APP}:{token}", "la", -5)  # 7 s left
    c = Client(make_app(app_doing(lambda s, e: s.regenerate().id)))
    c.set_cookie(APP, token)
    new = cookie_of(c.get("/"))
    session = rs.get(APP, new)
    assert session["no_resave"] is True and session["ttl"] <= 7 and session["d"] == {"a": 1}


# -- issue 10.4: a request in flight with the rotated token ---------------------------------------


@pytest.mark.parametrize("rotation", ["regenerate", "upgrade_from_anonymous"])
def test_a_request_in_flight_with_the_old_token_keeps_the_new_cookie(make_app, rs, caplog,
                                                                      rotation):
    """A slow request loaded the session, the user's other request rotated the token, then the
    slow one writes: it must not expire the (shared) cookie, and its write is either saved in
    the same user's new session or refused with a logged warning, never dropped silently."""
    loaded, rotated = threading.Event(), threading.Event()

    def slow(session, environ):
        session.get("x")
        loaded.set()
        rotated.wait(10)
        session["late"] = 1

    def rotate(session, environ):
        if rotation == "regenerate":
            session.regenerate()
        else:
            session.upgrade("alice")

    if rotation == "regenerate":
        token = login(Client(make_app()))
    else:
        token = cookie_of(Client(make_app(app_doing(lambda s, e: s.__setitem__("a", 1)))).get("/"))
    slow_client = Client(make_app(app_doing(slow)))
    slow_client.set_cookie(APP, token)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=slow_client.get("/")))
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        thread.start()
        loaded.wait(10)
        fast = Client(make_app(app_doing(rotate)))
        fast.set_cookie(APP, token)
        new = cookie_of(fast.get("/"))
        rotated.set()
        thread.join(10)
    assert new and new != token
    assert set_cookies(result["r"]) == []  # the browser's new cookie is left alone
    session = rs.get(APP, new)
    if rotation == "regenerate":
        assert session["d"]["late"] == 1  # the same user's write went to the new session
    else:
        assert "late" not in session.get("d", {})  # never into a user's session: fixation
        assert "replaced this session's token" in caplog.text
    # a request that arrives later with the old token is anonymous and keeps the cookie too
    late = Client(make_app(app_doing(lambda s, e: (s.get("x"), s.user_id))))
    late.set_cookie(APP, token)
    response = late.get("/")
    assert response.text == "(None, None)" and set_cookies(response) == []


def test_a_write_after_loading_a_rotated_token_creates_nothing(make_app, rs, redis_client,
                                                               namespace, caplog):
    token = cookie_of(Client(make_app(app_doing(lambda s, e: s.__setitem__("a", 1)))).get("/"))
    rs.upgrade(APP, token, "alice", "10.0.0.1", 3600)
    stale = Client(make_app(app_doing(lambda s, e: s.__setitem__("b", 2))))
    stale.set_cookie(APP, token)
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        response = stale.get("/")
    assert set_cookies(response) == [] and "replaced this session's token" in caplog.text
    assert not list(redis_client.scan_iter(match=f"{namespace}:{APP}:an:*"))


def test_anonymous_off_keeps_nodes_model(rs):
    app = SessionMiddleware(app_doing(lambda s, e: s.__setitem__("a", 1)), app_name=APP,
                            sessions=rs, anonymous=False)
    response = Client(app).get("/")
    assert set_cookies(response) == []


# -- issue 12.2: a request that writes without reading is one round trip (lazy sessions) ---------


def test_a_blind_write_is_one_round_trip_and_merges(make_app, rs, command_counter):
    def action(session, environ):
        query = environ["QUERY_STRING"]
        if query.startswith("upgrade="):
            session.upgrade(query[len("upgrade="):])
        elif query == "write":
            session["w"] = [1]  # no read first: sent blind
            session["gone"] = None
        elif query == "readwrite":
            session["n"] = session.get("n", 0) + 1

    app = make_app(app_doing(action), lazy=True)
    c = Client(app)
    token = cookie_of(c.get("/?upgrade=alice"))
    rs.set(APP, token, {"keep": 1, "gone": 2})
    c.get("/?write")  # loads the set script
    counter = command_counter()
    response = c.get("/?write")
    assert counter.count == 1 and set_cookies(response) == []
    assert rs.get(APP, token)["d"] == {"keep": 1, "w": [1]}
    counter = command_counter()
    c.get("/?readwrite")
    assert counter.count == 2
    counter = command_counter()
    c.get("/")  # untouched: nothing at all
    assert counter.count == 0


def test_a_blind_write_to_a_stale_cookie_starts_an_anonymous_session(make_app, rs):
    app = make_app(app_doing(lambda s, e: s.__setitem__("a", 1)), lazy=True)
    c = Client(app)
    c.set_cookie(APP, "Q" * 64)  # well-formed, stored nowhere
    token = cookie_of(c.get("/"))
    assert token and token != "Q" * 64 and rs.load(APP, token)["d"] == {"a": 1}


def test_a_blind_write_then_a_read_sees_both(make_app, rs):
    def action(session, environ):
        session["b"] = 2
        return dict(session)

    c = Client(make_app(doing(action), lazy=True))
    token = login(c)
    rs.set(APP, token, {"a": 1})
    assert c.get("/").text == "{'a': 1, 'b': 2}"
    assert rs.get(APP, token)["d"] == {"a": 1, "b": 2}


@pytest.mark.parametrize("policy", ["anonymous", "raise"])
def test_a_blind_write_during_an_outage_is_reported_never_dropped_silently(policy, caplog):
    """A write is never reported as success when it was not stored: the anonymous policy logs
    it (the page is served), the raise policy fails the request before its headers leave."""
    from redis_sessions import BackendUnavailable, RedisSessions

    from ..redis_server import RedisServer

    server = RedisServer().start()
    try:
        manager = RedisSessions(server.url, namespace="outage", wipe=0)
        token = manager.create(APP, "alice", "10.0.0.1")
        app = SessionMiddleware(app_doing(lambda s, e: s.__setitem__("a", 1)), app_name=APP,
                                sessions=manager, on_backend_error=policy)
        c = Client(app)
        c.set_cookie(APP, token)
        server.stop()
        with caplog.at_level(logging.WARNING, logger="redis_sessions"):
            if policy == "raise":
                with pytest.raises(BackendUnavailable):
                    c.get("/")
            else:
                response = c.get("/")
                assert response.status_code == 200 and set_cookies(response) == []
                assert "could not save the session" in caplog.text
        manager.close()
    finally:
        server.stop()
