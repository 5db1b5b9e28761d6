"""The Django session engine ``redis_sessions.django`` (issue 9, point 3) with Django's own
SessionMiddleware, auth, messages, CSRF and admin, through Django's test Client; the same
auth+messages scenario also runs on Django's cache backend (the parity the README claims)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from .django_browsers import ClientBrowser, auth_and_messages, log_in
from .django_support import APP, PASSWORD, configure, engine_settings, make_user

pytest.importorskip("django")


@pytest.fixture(params=["redis", "cache"])
def engine(request, rs):
    configure()
    from django.test import override_settings

    with override_settings(**engine_settings(request.param, rs)):
        yield request.param


@pytest.fixture
def ours(rs):
    configure()
    from django.test import override_settings

    with override_settings(**engine_settings("redis", rs)):
        yield rs


def store(key=None):
    from redis_sessions.django import SessionStore

    return SessionStore(key)


def client(**kwargs):
    from django.test import Client

    return Client(**kwargs)


def test_auth_and_messages_scenario(engine):
    auth_and_messages(ClientBrowser, make_user(), PASSWORD)


def test_request_session_is_a_facade_over_one_session(ours):
    from redis_sessions.django import SessionStore
    from redis_sessions.session import Session

    c = client()
    response = c.get("/put/?a=1&b=two")
    assert isinstance(response.wsgi_request.session, SessionStore)
    assert isinstance(response.wsgi_request.session._session_cache, Session)
    key = response.cookies["sessionid"].value
    assert key == response.wsgi_request.session.session_key
    again = store(key)
    assert dict(again.items()) == {"a": "1", "b": "two"}
    assert again.user_id is None  # anonymous


def test_login_moves_anonymous_data_into_a_user_session(ours):
    user = make_user()
    c = client()
    anonymous = c.get("/put/?cart=3").cookies["sessionid"].value
    response = c.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    key = response.cookies["sessionid"].value
    assert key != anonymous
    session = store(key)
    assert session.user_id == str(user.pk)
    assert session["cart"] == "3" and session["_auth_user_id"] == str(user.pk)
    assert not store().exists(anonymous)
    assert [s["token"] for s in session.soid()] == [key]
    assert ours.soid(APP, str(user.pk))[0]["ip"] == "127.0.0.1"
    assert c.get("/whoami/").content.decode() == user.username
    assert c.get("/logout/").content == b"bye"
    assert c.cookies["sessionid"].value == ""
    assert not store().exists(key)
    assert ours.soid(APP, str(user.pk)) == []


def test_client_login_force_login_and_client_session(ours):
    user = make_user()
    c = client()
    assert c.login(username=user.username, password=PASSWORD)
    assert store(c.cookies["sessionid"].value).user_id == str(user.pk)
    assert c.get("/whoami/").content.decode() == user.username
    other = make_user()
    c.force_login(other)
    assert c.get("/whoami/").content.decode() == other.username
    assert store(c.cookies["sessionid"].value).user_id == str(other.pk)
    assert ours.soid(APP, str(user.pk)) == []  # the first user's session was replaced
    # Django's documented pattern for preparing a session in a test
    fresh = client()
    session = fresh.session
    session["prepared"] = "yes"
    session.save()
    assert fresh.session["prepared"] == "yes"
    fresh.get("/put/?more=1")
    assert dict(fresh.session.items()) == {"prepared": "yes", "more": "1"}


def test_csrf_use_sessions_login_form(ours):
    user = make_user()
    c = client(enforce_csrf_checks=True)
    page = c.get("/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": user.username, "password": PASSWORD}
    assert c.post("/login/", form).status_code == 403  # no token
    assert c.post("/login/", dict(form, csrfmiddlewaretoken=token)).status_code == 302
    assert c.get("/whoami/").content.decode() == user.username


def test_password_change_logs_out_other_sessions(ours):
    user = make_user()
    a, b, c = ClientBrowser(), ClientBrowser(), ClientBrowser()
    for browser in (a, b, c):
        assert log_in(browser, "/login/", user.username, PASSWORD) == user.username
    assert len(ours.soid(APP, str(user.pk))) == 3
    old = b.session_key
    assert a.get(f"/password/?new={PASSWORD}&keep=1") == "changed"
    assert b.get("/whoami/") == "anonymous"  # flushed by Django's hash check, not a 500
    assert b.session_key is None and not store().exists(old)
    assert c.get("/whoami/") == "anonymous"
    assert [s["token"] for s in ours.soid(APP, str(user.pk))] == [a.session_key]


def test_destroyall_logs_out_every_device(ours):
    user = make_user()
    a, b = ClientBrowser(), ClientBrowser()
    for browser in (a, b):
        log_in(browser, "/login/", user.username, PASSWORD)
    session = store(a.session_key)
    assert len(session.soid()) == 2
    assert session.destroyall() == 2
    assert session.session_key is None and session.is_empty()
    assert a.get("/whoami/") == "anonymous" and b.get("/whoami/") == "anonymous"


def test_sessionbase_api(ours):
    from django.conf import settings
    from django.utils import timezone

    s = store()
    assert s.is_empty() and s.session_key is None and not s.modified and not s.accessed
    s["a"] = 1
    assert s.modified and s.accessed and not s.is_empty()
    s.save()
    key = s.session_key
    assert key and store().exists(key)
    s = store(key)
    assert not s.accessed and not s.modified and not s.is_empty()
    assert s["a"] == 1 and s.accessed and not s.modified
    assert s.get_expiry_age() == settings.SESSION_COOKIE_AGE
    assert not s.get_expire_at_browser_close()
    s.set_expiry(300)
    assert s.modified and s.get_expiry_age() == 300
    before = timezone.now()
    expires = s.get_expiry_date()
    assert before + timedelta(seconds=300) <= expires <= timezone.now() + timedelta(seconds=300)
    s.save()
    s.set_expiry(0)
    assert s.get_expire_at_browser_close()
    s.set_expiry(None)
    s.save()
    assert store(key).get_expiry_age() == settings.SESSION_COOKIE_AGE
    # mapping methods
    s = store(key)
    assert s.setdefault("b", [1, 2]) == [1, 2] and s.pop("a") == 1
    s.update({"c": {"d": True}})
    assert sorted(s.keys()) == ["b", "c"] and s.get("zz", 5) == 5 and "b" in s
    s.save()
    assert dict(store(key).items()) == {"b": [1, 2], "c": {"d": True}}
    # cycle_key: a new key, the same data, the old key gone
    s = store(key)
    s.cycle_key()
    assert s.session_key != key and s.modified
    assert dict(store(s.session_key).items()) == {"b": [1, 2], "c": {"d": True}}
    assert not store().exists(key)
    # flush: killed, and an empty session
    key = s.session_key
    s.flush()
    assert s.session_key is None and s.is_empty() and not store().exists(key)
    # clear then save: the stored session becomes empty
    t = store()
    t["x"] = "y"
    t.save()
    key = t.session_key
    t = store(key)
    t.clear()
    t.save()  # Django keeps an emptied session (and its key)
    assert t.session_key == key and store().exists(key) and dict(store(key).items()) == {}
    # delete(key) of another session
    u = store()
    u["x"] = 1
    u.save()
    store().delete(u.session_key)
    assert not store().exists(u.session_key)


def test_set_expiry_sets_the_cookie_and_the_redis_ttl(ours):
    from django.conf import settings

    c = client()
    c.get("/put/?a=1")
    response = c.get("/expiry/?seconds=60")  # anonymous
    key = response.cookies["sessionid"].value
    assert response.cookies["sessionid"]["max-age"] == 60
    assert store(key)._session_cache.ttl == 60
    assert store(key)._session_cache.ttl == 60  # a load keeps the session's own ttl
    s = store(key)
    s.set_expiry(None)
    s.save()
    assert store(key)._session_cache.ttl == settings.SESSION_COOKIE_AGE
    assert dict(store(key).items()) == {"a": "1"}
    user = make_user()
    c.force_login(user)
    response = c.get("/expiry/?seconds=60")
    assert response.content == b"60"
    assert response.cookies["sessionid"]["max-age"] == 60
    key = response.cookies["sessionid"].value
    assert ours.get(APP, key)["ttl"] == 60  # the Redis expiry follows set_expiry
    response = c.get("/expiry/?seconds=0")  # at browser close: the default ttl
    assert response.cookies["sessionid"]["max-age"] == ""
    assert ours.get(APP, key)["ttl"] == settings.SESSION_COOKIE_AGE


def test_in_place_changes_are_saved(ours):
    s = store()
    s["cart"] = [1]
    s.save()
    s = store(s.session_key)
    s["cart"].append(2)  # no modified = True needed
    assert s.modified
    s.save()
    assert store(s.session_key)["cart"] == [1, 2]


def test_a_view_that_fails_saves_nothing(ours):
    c = client(raise_request_exception=False)
    key = c.get("/put/?a=1").cookies["sessionid"].value
    assert c.get("/put/?b=2&boom=1").status_code == 500
    assert dict(store(key).items()) == {"a": "1"}


def test_admin_check_and_login(ours):
    from django.core.management import call_command

    call_command("check")  # raises SystemCheckError on any error, e.g. admin.E410
    user = make_user(staff=True)
    browser = ClientBrowser()
    page = log_in(browser, "/admin/login/?next=/admin/", user.username, PASSWORD)
    assert "Site administration" in page
    assert store(browser.session_key).user_id == str(user.pk)


def test_clearsessions(ours):
    from django.core.management import call_command

    s = store()
    s["a"] = 1
    s.save()
    call_command("clearsessions")  # runs the manager's wipe
    assert store().exists(s.session_key)


def test_round_trips(ours, command_counter):
    user = make_user()
    c = client()
    c.force_login(user)
    c.get("/whoami/")
    counter = command_counter()
    c.get("/whoami/")  # loads the session once (auth and CSRF both read it)
    assert counter.count == 1


def test_missing_settings_are_reported(rs):
    configure()
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    with override_settings(REDIS_SESSIONS=None), pytest.raises(ImproperlyConfigured):
        store()
    with override_settings(REDIS_SESSIONS={"app_name": lambda environ: "x", "sessions": rs}), \
            pytest.raises(ImproperlyConfigured):
        store()
    with override_settings(REDIS_SESSIONS={"app_name": APP, "sessions": rs, "cookie": {}}), \
            pytest.raises(ImproperlyConfigured):
        store()


def test_a_token_rotated_by_a_concurrent_request(ours):
    """A request still carrying a token that a login/cycle_key just replaced: its cookie is
    neither expired nor overwritten; a write is refused with Django's SessionInterrupted."""
    user = make_user()
    c = client(raise_request_exception=False)
    c.force_login(user)
    old = c.cookies["sessionid"].value
    s = store(old)
    s.cycle_key()  # what a concurrent request of the same browser did
    response = c.get("/whoami/")
    assert response.status_code == 200 and "sessionid" not in response.cookies
    response = c.get("/put/?a=1")
    assert response.status_code == 400 and "sessionid" not in response.cookies
    c.cookies["sessionid"] = s.session_key  # the cookie the browser got from the other one
    assert c.get("/whoami/").content.decode() == user.username
