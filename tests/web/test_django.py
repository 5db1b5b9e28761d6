"""redis_sessions.django.SessionMiddleware with Django's test client (issue 4, point 7)."""

from __future__ import annotations

import pytest

from redis_sessions.session import Session

from .conftest import APP, django_setup

pytest.importorskip("django")


@pytest.fixture
def client(rs):
    django_setup()
    from django.test import Client, override_settings

    client = Client(raise_request_exception=False)
    with override_settings(REDIS_SESSIONS={"app_name": APP, "sessions": rs}):
        client.get("/", {"noop": 1})
    return client


def test_request_session_is_a_redis_session(client, rs):
    response = client.get("/", {"upgrade": "alice"})
    assert response.content == b"LOGGED IN - USER: alice"
    token = response.cookies[APP].value
    assert rs.get(APP, token)["id"] == "alice"
    assert isinstance(response.wsgi_request.session, Session)
    assert client.get("/", {"save": 1, "a": "x"}).content.startswith(b"USER: alice\nSAVED:")
    assert rs.get(APP, token)["d"] == {"a": "x"}
    response = client.get("/", {"destroy": 1})
    assert response.content == b"killed + 1"
    assert response.cookies[APP].value == "" and response.cookies[APP]["max-age"] == 0
    assert client.get("/").content == b"UNKOWN"


def test_django_round_trips(client, command_counter):
    client.get("/", {"upgrade": "alice"})
    client.get("/", {"save": 1, "warm": "up"})
    counter = command_counter()
    client.get("/")
    assert counter.count == 1


def test_django_view_exception_saves_nothing(client, rs):
    token = client.get("/", {"upgrade": "alice"}).cookies[APP].value
    assert client.get("/", {"raise": 1}).status_code == 500
    assert "d" not in rs.get(APP, token)


def test_missing_settings_are_reported():
    django_setup()
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from redis_sessions.django import SessionMiddleware

    with override_settings(REDIS_SESSIONS=None), pytest.raises(ImproperlyConfigured):
        SessionMiddleware(lambda request: None)
