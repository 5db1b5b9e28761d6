"""The Flask app over real HTTP: gunicorn serving it on a loopback port, a requests.Session as
the browser (its cookie jar). The same scenario runs on Flask-Session's Redis backend."""

from __future__ import annotations

import pytest
import requests

from .flask_support import APP, BACKENDS, Gunicorn, csrf_of


@pytest.fixture(params=BACKENDS)
def server(request, redis_url, namespace):
    gunicorn = Gunicorn(request.param, redis_url, namespace)
    gunicorn.backend = request.param
    yield gunicorn
    log = gunicorn.stop()
    assert "Traceback" not in log, log


def test_login_logout_over_http(server, rs):
    browser = requests.Session()
    response = browser.get(server.url + "/private", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Vary"] == "Cookie"
    page = browser.get(server.url + "/login").text
    assert "flashes:Please log in to access this page." in page
    response = browser.post(server.url + "/login",
                            data={"username": "alice", "csrf_token": csrf_of(page)})
    assert response.text == "alice"  # redirected to /whoami
    assert browser.get(server.url + "/private").text == "secret alice"
    if server.backend == "ours":
        [mine] = rs.soid(APP, "alice")
        assert browser.cookies[APP] == mine["token"]
        header = browser.get(server.url + "/logout", allow_redirects=False).headers["Set-Cookie"]
        assert header.startswith(f"{APP}=") and "HttpOnly" in header and "Path=/" in header
        assert rs.soid(APP, "alice") == []
    else:
        browser.get(server.url + "/logout", allow_redirects=False)
    assert "flashes:bye" in browser.get(server.url + "/login").text
    assert browser.get(server.url + "/whoami").text == "anonymous"


def test_csrf_over_http(server):
    browser = requests.Session()
    browser.get(server.url + "/login")
    response = browser.post(server.url + "/login", data={"username": "alice", "csrf_token": "x"})
    assert response.status_code == 400
    other = requests.Session()  # a token from another browser's session is refused too
    token = csrf_of(other.get(server.url + "/login").text)
    response = browser.post(server.url + "/login", data={"username": "alice", "csrf_token": token})
    assert response.status_code == 400


def test_authlib_over_http(server):
    browser = requests.Session()
    # start -> the provider (same server) -> the callback, whose token request goes to the
    # provider's token endpoint on the same server
    response = browser.get(server.url + "/oauth/start")
    assert response.status_code == 200 and response.text == "token granted"
    assert [r.status_code for r in response.history] == [302, 302]
