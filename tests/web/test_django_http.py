"""The Django engines over real HTTP: gunicorn serves the test project on loopback, browsers are
requests sessions (cookie jars). Ours and Django's cache backend pass the same scenario."""

from __future__ import annotations

import pytest

from .django_browsers import HttpBrowser, auth_and_messages, log_in
from .django_support import APP, PASSWORD, configure, make_user, serve

pytest.importorskip("django")
pytest.importorskip("gunicorn")
pytest.importorskip("requests")


@pytest.fixture(params=["redis", "cache"])
def site(request, redis_url, namespace, monkeypatch):
    configure()
    monkeypatch.setenv("RS_DJANGO_ENGINE", request.param)
    for base in serve(redis_url, namespace):
        yield request.param, base


def test_auth_and_messages_over_http(site):
    engine, base = site
    auth_and_messages(lambda: HttpBrowser(base), make_user(), PASSWORD)


def test_admin_login_over_http(site, rs):
    engine, base = site
    user = make_user(staff=True)
    browser = HttpBrowser(base)
    page = log_in(browser, "/admin/login/?next=/admin/", user.username, PASSWORD)
    assert "Site administration" in page
    assert browser.get("/whoami/") == user.username
    if engine == "redis":  # the server's sessions are ours, in this test's namespace
        [session] = rs.soid(APP, str(user.pk))
        assert session["token"] == browser.session_key and session["ip"] == "127.0.0.1"
