"""The Flask devices blueprint (``redis_sessions.devices.flask``) in an app with flask-login and
flask-wtf, through Flask's test client and over real HTTP (a threaded WSGI server on loopback,
requests cookie jars), with real browsers' User-Agents; and in a bare app (no flask-login, no
flask-wtf: a session user id and the blueprint's own CSRF token are required)."""

from __future__ import annotations

import json
import re
import threading
from typing import Any, NamedTuple

import flask
import pytest
import requests
from flask_login import LoginManager, UserMixin, login_user
from flask_wtf.csrf import CSRFProtect, generate_csrf
from werkzeug.serving import make_server
from werkzeug.test import Client

from redis_sessions.devices.flask import device_signed_in, devices_blueprint
from redis_sessions.flask import RedisSessionInterface

from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE, Agent

APP = "flaskdev"
LIST = "/account/devices/"
END = "/account/devices/end"
END_OTHERS = "/account/devices/end-others"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW = re.compile(r'<li class="rs-device( rs-current)?" data-handle="([0-9a-f]{24})">')


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def make_app(rs: Any, *, extensions: bool = True, **options: Any) -> flask.Flask:
    app = flask.Flask("flaskdev")
    app.config.update(SECRET_KEY="devices-tests")
    app.session_interface = RedisSessionInterface(app_name=APP, sessions=rs, **options)
    if extensions:
        CSRFProtect(app)
        login = LoginManager(app)
        login.login_view = "login"
        login.user_loader(User)

    @app.route("/login", methods=["GET", "POST"], endpoint="login")
    def login_view() -> Any:
        if flask.request.method == "POST":
            name = flask.request.form["username"]
            if extensions:
                login_user(User(name))
            else:
                flask.session.upgrade(name)  # type: ignore[attr-defined]
            return flask.redirect("/whoami")
        token = generate_csrf() if extensions else ""
        flashes = "|".join(flask.get_flashed_messages())
        return f"csrf:{token}\nflashes:{flashes}"

    @app.route("/whoami")
    def whoami() -> str:
        return flask.session.user_id or "anonymous"  # type: ignore[attr-defined]

    app.register_blueprint(devices_blueprint, url_prefix="/account/devices")
    return app


class Reply(NamedTuple):
    status: int
    text: str
    location: str

    def json(self) -> Any:
        return json.loads(self.text)


class ClientBrowser:
    def __init__(self, app: flask.Flask, agent: Agent) -> None:
        self.client = Client(app)
        self.agent = agent

    def _reply(self, response: Any) -> Reply:
        location = response.headers.get("Location", "")
        return Reply(response.status_code, response.get_data(as_text=True),
                     location.removeprefix("http://localhost"))

    def get(self, path: str, accept: str | None = None) -> Reply:
        headers = {"User-Agent": self.agent.user_agent, **({"Accept": accept} if accept else {})}
        return self._reply(self.client.get(path, headers=headers))

    def post(self, path: str, data: dict | None = None, *, json_body: Any = None,
             accept: str | None = None, csrf_header: str | None = None) -> Reply:
        headers = {"User-Agent": self.agent.user_agent}
        if accept:
            headers["Accept"] = accept
        if csrf_header:
            headers["X-CSRFToken"] = csrf_header
        if json_body is not None:
            return self._reply(self.client.post(path, json=json_body, headers=headers))
        return self._reply(self.client.post(path, data=data or {}, headers=headers))

    @property
    def session_key(self) -> str | None:
        cookie = self.client.get_cookie(APP)
        return cookie.value if cookie else None


class HttpBrowser:
    def __init__(self, base: str, agent: Agent) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["User-Agent"] = agent.user_agent

    def _reply(self, response: Any) -> Reply:
        return Reply(response.status_code, response.text,
                     response.headers.get("Location", "").removeprefix(self.base))

    def get(self, path: str, accept: str | None = None) -> Reply:
        headers = {"Accept": accept} if accept else {}
        return self._reply(self.http.get(self.base + path, headers=headers, timeout=10,
                                         allow_redirects=False))

    def post(self, path: str, data: dict | None = None, *, json_body: Any = None,
             accept: str | None = None, csrf_header: str | None = None) -> Reply:
        headers = {}
        if accept:
            headers["Accept"] = accept
        if csrf_header:
            headers["X-CSRFToken"] = csrf_header
        return self._reply(self.http.post(self.base + path, data=data, json=json_body,
                                          headers=headers, timeout=10, allow_redirects=False))

    @property
    def session_key(self) -> str | None:
        return self.http.cookies.get(APP)


class Served:
    """The app on a threaded WSGI server on a free loopback port (real HTTP)."""

    def __init__(self, app: flask.Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture(params=["client", "http"])
def browsers(request, rs):
    """``new_browser(agent)`` for the app with flask-login and flask-wtf."""
    app = make_app(rs)
    if request.param == "client":
        yield lambda agent: ClientBrowser(app, agent)
        return
    served = Served(app)
    try:
        yield lambda agent: HttpBrowser(served.url, agent)
    finally:
        served.stop()


def csrf(text: str) -> str:
    found = CSRF_FIELD.search(text) or re.search(r"csrf:(\S+)", text)
    assert found, "no CSRF token"
    return found.group(1)


def rows(text: str) -> list[tuple[str, bool]]:
    return [(handle, bool(current)) for current, handle in ROW.findall(text)]


def log_in(browser: Any, name: str) -> None:
    token = csrf(browser.get("/login").text)
    reply = browser.post("/login", {"username": name, "csrf_token": token})
    assert reply.status == 302, reply


def page(browser: Any) -> Reply:
    reply = browser.get(LIST)
    assert reply.status == 200, reply
    return reply


def test_the_devices_blueprint(browsers, rs, caplog) -> None:
    caplog.set_level("DEBUG")
    laptop, phone, tablet = (browsers(a) for a in (FIREFOX_LINUX, SAFARI_IPHONE, CHROME_ANDROID))
    signed_out = browsers(FIREFOX_LINUX)
    for browser in (laptop, phone, tablet):
        log_in(browser, "alice")
    log_in(browsers(FIREFOX_LINUX), "bob")
    node_token = rs.create(APP, "alice", "198.51.100.4")
    tokens = [b.session_key for b in (laptop, phone, tablet)] + [node_token]

    def no_token_in(text: str) -> None:
        assert all(t and t not in text and t[:20] not in text for t in tokens)

    html = page(laptop).text
    no_token_in(html)
    listed = rows(html)
    assert len(listed) == 4 and listed[0][1] and sum(c for _, c in listed) == 1
    for label in ("Firefox 133 on Linux", "Mobile Safari 17 on iOS 17",
                  "Chrome Mobile 131 on Android 14", "Unknown device", "This device"):
        assert label in html
    assert html.count('name="csrf_token"') == 5
    body = laptop.get(LIST, accept="application/json")
    no_token_in(body.text)
    devices = body.json()["devices"]
    assert [d["current"] for d in devices] == [True, False, False, False]
    phone_handle = next(d["handle"] for d in devices if d["kind"] == "mobile"
                        and "iOS" in d["label"])
    node_handle = next(d["handle"] for d in devices if d["user_agent"] is None)
    bobs = rs.devices(APP, "bob")[0]["handle"]

    # flask-login's login_required: the login view; JSON: 401
    assert signed_out.get(LIST).location.startswith("/login?next=")
    assert signed_out.get(LIST, accept="application/json").status == 401
    # flask-wtf: a POST without its token is refused, nothing ends
    assert laptop.post(END, {"handle": phone_handle}).status == 400
    assert laptop.post(END_OTHERS, {}).status == 400
    assert len(rows(page(phone).text)) == 4

    token = csrf(html)
    reply = laptop.post(END, {"handle": phone_handle, "csrf_token": token})
    assert (reply.status, reply.location) == (302, LIST)
    html = page(laptop).text
    assert "Logged out Mobile Safari 17 on iOS 17." in html and len(rows(html)) == 3
    assert phone.get(LIST).location.startswith("/login")
    # another user's handle, a stale one, nonsense: refused, bob still signed in
    for handle in (bobs, phone_handle, "nope"):
        reply = laptop.post(END, {"handle": handle, "csrf_token": token})
        assert reply.status == 302
        assert "That device is not signed in any more." in page(laptop).text
    assert len(rs.devices(APP, "bob")) == 1
    reply = laptop.post(END, json_body={"handle": node_handle}, accept="application/json",
                        csrf_header=token)
    assert reply.status == 200 and reply.json()["ended"] == 1
    assert rs.get(APP, node_token) is None
    reply = laptop.post(END, json_body={"handle": bobs}, accept="application/json",
                        csrf_header=token)
    assert reply.status == 404

    log_in(phone, "alice")
    reply = laptop.post(END_OTHERS, {"csrf_token": token})
    assert (reply.status, reply.location) == (302, LIST)
    html = page(laptop).text
    assert "Logged out 2 other devices." in html and len(rows(html)) == 1
    assert tablet.get("/whoami").text == "anonymous" and phone.get("/whoami").text == "anonymous"

    [(own, _)] = rows(html)
    reply = laptop.post(END, {"handle": own, "csrf_token": token})
    assert reply.status == 302
    assert laptop.get("/whoami").text == "anonymous"
    assert laptop.get(LIST).location.startswith("/login")
    assert rs.soid(APP, "alice") == []
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not re.search(r"[A-Za-z0-9]{55}Z[0-9a-z]{8}", text)


def test_without_flask_login_and_flask_wtf(rs) -> None:
    app = make_app(rs, extensions=False)
    laptop, phone = ClientBrowser(app, FIREFOX_LINUX), ClientBrowser(app, SAFARI_IPHONE)
    stranger = ClientBrowser(app, CHROME_ANDROID)
    assert stranger.get(LIST).status == 401
    assert stranger.get(LIST, accept="application/json").status == 401
    for browser in (laptop, phone):
        browser.post("/login", {"username": "carol"})
    html = page(laptop).text
    [(_, this), (phone_handle, other)] = rows(html)
    assert this and not other
    # the blueprint's own CSRF token: required, and checked
    assert laptop.post(END, {"handle": phone_handle}).status == 400
    assert laptop.post(END, {"handle": phone_handle, "csrf_token": "x" * 43}).status == 400
    assert len(rs.devices(APP, "carol")) == 2
    reply = laptop.post(END, {"handle": phone_handle, "csrf_token": csrf(html)})
    assert reply.status == 302
    assert phone.get(LIST).status == 401
    assert "Logged out Mobile Safari 17 on iOS 17." in page(laptop).text
    reply = laptop.post(END, json_body={"handle": phone_handle}, accept="application/json",
                        csrf_header=csrf(html))
    assert reply.status == 404


def test_sign_ins_send_the_blinker_signal_and_call_the_callback(rs) -> None:
    called: list[str] = []
    app = make_app(rs, on_sign_in=lambda session, device: called.append(device.label))
    heard: list[tuple] = []

    def receiver(sender, session, device, **extra):
        heard.append((sender, session.user_id, device))

    with device_signed_in.connected_to(receiver):
        log_in(ClientBrowser(app, CHROME_ANDROID), "dave")
    [(sender, user, device)] = heard
    assert sender is app and user == "dave" and device.current
    assert device.label == "Chrome Mobile 131 on Android 14" and device.kind == "mobile"
    assert called == ["Chrome Mobile 131 on Android 14"]


def test_the_template_can_be_overridden_by_the_app(rs, tmp_path) -> None:
    (tmp_path / "redis_sessions").mkdir()
    (tmp_path / "redis_sessions" / "devices.html").write_text(
        "{% for d in devices %}[{{ d.label }}|{{ d.current }}]{% endfor %}")
    (tmp_path / "site.html").write_text("<main id=site>{% block content %}{% endblock %}</main>")
    app = make_app(rs)
    app.template_folder = str(tmp_path)
    browser = ClientBrowser(app, FIREFOX_LINUX)
    log_in(browser, "erin")
    assert page(browser).text == "[Firefox 133 on Linux|True]"
    (tmp_path / "redis_sessions" / "devices.html").unlink()
    other = make_app(rs)
    other.template_folder = str(tmp_path)
    other.config["REDIS_SESSIONS_DEVICES_BASE"] = "site.html"
    browser = ClientBrowser(other, FIREFOX_LINUX)
    log_in(browser, "erin")
    html = page(browser).text
    assert html.startswith("<main id=site>") and "Firefox 133 on Linux" in html


def test_the_blueprint_says_when_the_app_has_no_redis_sessions() -> None:
    app = flask.Flask("plain")
    app.secret_key = "x"
    app.register_blueprint(devices_blueprint, url_prefix="/account/devices")
    app.testing = True
    with pytest.raises(RuntimeError, match="RedisSessionInterface"):
        app.test_client().get(LIST)
