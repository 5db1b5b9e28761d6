"""Two kinds of browser for the Django scenario: Django's test Client, and requests over HTTP.
Both follow redirects, keep cookies, and log in through the login form (CSRF token included)."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class ClientBrowser:
    def __init__(self) -> None:
        from django.test import Client

        self.client = Client(enforce_csrf_checks=True)

    def get(self, path: str) -> str:
        response = self.client.get(path, follow=True)
        assert response.status_code == 200, (path, response.status_code)
        return response.content.decode()

    def post(self, path: str, form: dict) -> str:
        response = self.client.post(path, form, follow=True)
        assert response.status_code == 200, (path, response.status_code)
        return response.content.decode()

    @property
    def session_key(self) -> str | None:
        from django.conf import settings

        cookie = self.client.cookies.get(settings.SESSION_COOKIE_NAME)
        return cookie.value or None if cookie else None


class HttpBrowser:
    def __init__(self, base: str) -> None:
        import requests

        self.base = base
        self.http = requests.Session()

    def get(self, path: str) -> str:
        response = self.http.get(self.base + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[-500:])
        return response.text

    def post(self, path: str, form: dict) -> str:
        response = self.http.post(self.base + path, data=form, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[-500:])
        return response.text

    @property
    def session_key(self) -> str | None:
        return self.http.cookies.get("sessionid")


def log_in(browser, path: str, username: str, password: str) -> str:
    """Fill in a login form (Django's LoginView or the admin's): the page after the redirect."""
    token = CSRF.search(browser.get(path))
    assert token, "no CSRF token in the login form"
    return browser.post(path, {"username": username, "password": password,
                               "csrfmiddlewaretoken": token.group(1)})


def auth_and_messages(new_browser, user, password: str) -> None:
    """The scenario both engines must pass, in-process and over HTTP."""
    name = user.get_username()
    a, b = new_browser(), new_browser()
    # a message added for an anonymous visitor survives the redirect, and is shown once
    assert a.get("/note/?text=hi") == "anonymous\nhi"
    assert a.get("/whoami/") == "anonymous"
    anonymous_key = a.session_key  # emptied, the session is kept (as Django's backends do)
    assert anonymous_key
    # the login form, with the CSRF secret in the session (CSRF_USE_SESSIONS)
    a.get("/login/")
    assert a.session_key == anonymous_key
    assert log_in(a, "/login/", name, password) == name
    assert a.session_key and a.session_key != anonymous_key
    assert log_in(b, "/login/", name, password) == name
    # a message for a logged-in user
    assert a.get("/note/?text=welcome") == f"{name}\nwelcome"
    # a password change with update_session_auth_hash keeps this session (under a new key)...
    before = a.session_key
    assert a.get(f"/password/?new={password}&keep=1") == "changed"
    assert a.session_key != before
    assert a.get("/whoami/") == name
    # ... and the other one is logged out by Django's hash check on its next request (no 500)
    assert b.get("/whoami/") == "anonymous"
    assert b.get("/whoami/") == "anonymous"
    # logout ends the session
    assert a.get("/logout/") == "bye"
    assert a.session_key is None
    assert a.get("/whoami/") == "anonymous"
