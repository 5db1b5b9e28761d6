"""The Django devices app over real HTTP: gunicorn serves the test project on loopback, each
browser is a requests.Session (a cookie jar) sending a real browser's User-Agent; the same
scenario as through the test client, CSRF enforced by Django's middleware."""

from __future__ import annotations

import pytest

from ..agents import FIREFOX_LINUX
from .devices_django_support import LIST, HttpBrowser, devices_scenario, log_in, rows
from .django_support import APP, PASSWORD, configure, make_user, serve

pytest.importorskip("django")
pytest.importorskip("gunicorn")
pytest.importorskip("requests")


@pytest.fixture
def site(redis_url, namespace, monkeypatch):
    configure()
    monkeypatch.setenv("RS_DJANGO_ENGINE", "redis")
    yield from serve(redis_url, namespace)


def test_the_devices_pages_over_http(site, rs) -> None:
    devices_scenario(lambda agent: HttpBrowser(site, agent), make_user(), PASSWORD, rs, APP)


def test_the_ip_and_user_agent_recorded_are_the_requests(site, rs) -> None:
    user = make_user()
    browser = HttpBrowser(site, FIREFOX_LINUX)
    log_in(browser, user.username, PASSWORD)
    [record] = rs.devices(APP, str(user.pk))
    assert record["user_agent"] == FIREFOX_LINUX.user_agent and record["ip"] == "127.0.0.1"
    [(handle, current)] = rows(browser.get(LIST).text)
    assert current and handle == record["handle"]
