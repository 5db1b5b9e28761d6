"""Helpers of the Flask tests: a small flask-login + flask-wtf + Authlib app on either session
backend (ours or Flask-Session's Redis one), a gunicorn fixture serving it over real HTTP, and a
requests transport that hands Authlib's token request to the app in-process.

The app is configured by ``make_login_app(backend, redis_url, namespace, base_url)``; gunicorn
imports ``create_app()`` below, which reads the same arguments from FLASK_TEST_* variables.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flask
import requests
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    fresh_login_required,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.test import Client
from wtforms import BooleanField, StringField

APP = "flasktest"  # our cookie's name (the app name)
FLASK_SESSION_COOKIE = "session"
USERS = {"alice", "bob"}
MANY_USERS = "user-"  # any id with this prefix may log in too (tests/servers: many clients)
BACKENDS = ["ours", "flask_session"]


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


class LoginForm(FlaskForm):
    username = StringField()
    remember = BooleanField()


def make_login_app(backend: str, redis_url: str, namespace: str,
                   base_url: str = "http://localhost", **config) -> flask.Flask:
    """The app: /login (a flask-wtf form), /logout, /private (@login_required), /fresh
    (@fresh_login_required), /whoami, /mine (a value of the user's own), and an OAuth client (/oauth/start, /oauth/callback) of a
    fake provider served by the same app (/provider/authorize, /provider/token)."""
    import redis

    app = flask.Flask("flasktest")
    app.config.update(SECRET_KEY="flask-tests", **config)
    if backend == "ours":
        from redis_sessions import RedisSessions
        from redis_sessions.flask import RedisSessionInterface

        app.session_interface = RedisSessionInterface(
            app_name=APP, sessions=RedisSessions(redis_url, namespace=namespace, wipe=0))
    else:
        from flask_session import Session

        # Flask-Session's sessions are permanent unless told otherwise; Flask's are not
        app.config.setdefault("SESSION_PERMANENT", False)
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(redis_url),
                          SESSION_KEY_PREFIX=f"{namespace}:fs:")
        Session(app)
    CSRFProtect(app)
    login = LoginManager(app)
    login.login_view = "login"
    login.refresh_view = "login"
    login.needs_refresh_message = "Please log in again."

    @login.user_loader
    def load_user(user_id: str) -> User | None:
        return User(user_id) if user_id in USERS or user_id.startswith(MANY_USERS) else None

    def flashes() -> str:
        return "|".join(flask.get_flashed_messages())

    @app.route("/login", methods=["GET", "POST"], endpoint="login")
    def login_view():
        form = LoginForm()
        if form.validate_on_submit():
            login_user(User(form.username.data), remember=form.remember.data)
            return flask.redirect("/whoami")
        if flask.request.method == "POST":
            return "form invalid", 400
        return f"flashes:{flashes()}\ncsrf:{form.csrf_token.current_token}"

    @app.route("/logout")
    def logout():
        logout_user()
        flask.flash("bye")
        return flask.redirect("/login")

    @app.route("/private")
    @login_required
    def private():
        return f"secret {current_user.id}"

    @app.route("/fresh")
    @fresh_login_required
    def fresh():
        return f"fresh {current_user.id}"

    @app.route("/whoami")
    def whoami():
        return current_user.id if current_user.is_authenticated else "anonymous"

    @app.route("/mine")
    @login_required
    def mine():  # ?set=VALUE stores it in the session; the reply: the user id and the value
        if "set" in flask.request.args:
            flask.session["mine"] = {"owner": current_user.id, "value": flask.request.args["set"]}
        return {"user": current_user.id, "mine": flask.session.get("mine")}

    _add_oauth(app, base_url)
    return app


def _add_oauth(app: flask.Flask, base_url: str) -> None:
    from authlib.integrations.flask_client import OAuth

    oauth = OAuth(app)
    oauth.register("fake", client_id="client", client_secret="secret",
                   authorize_url=f"{base_url}/provider/authorize",
                   access_token_url=f"{base_url}/provider/token",
                   client_kwargs={"token_endpoint_auth_method": "client_secret_post"})
    app.extensions["test_oauth"] = oauth
    csrf = app.extensions["csrf"]

    @app.route("/oauth/start")
    def oauth_start():
        return oauth.fake.authorize_redirect(f"{base_url}/oauth/callback")

    @app.route("/oauth/callback")
    def oauth_callback():
        token = oauth.fake.authorize_access_token()
        return f"token {token['access_token']}"

    @app.route("/provider/authorize")
    def provider_authorize():  # the provider says yes at once and sends the browser back
        args = flask.request.args
        return flask.redirect(f"{args['redirect_uri']}?code=the-code&state={args['state']}")

    @csrf.exempt
    @app.route("/provider/token", methods=["POST"])
    def provider_token():
        if flask.request.form.get("code") != "the-code":
            return {"error": "invalid_grant"}, 400
        return {"access_token": "granted", "token_type": "Bearer", "expires_in": 3600}


class WSGIAdapter(requests.adapters.BaseAdapter):
    """A requests transport that answers from a WSGI app in-process (Authlib's token request,
    without a network)."""

    def __init__(self, app) -> None:
        super().__init__()
        self.client = Client(app)

    def send(self, request, **kwargs):
        answer = self.client.open(request.url, method=request.method,
                                  headers=dict(request.headers), data=request.body)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(answer.headers)
        response._content = answer.get_data()
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def route_token_requests_to(app: flask.Flask, monkeypatch) -> None:
    """Authlib's OAuth2Session (a requests.Session) gets the adapter for http://localhost/."""
    from authlib.integrations.requests_client import OAuth2Session

    original = OAuth2Session.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.mount("http://localhost/", WSGIAdapter(app))

    monkeypatch.setattr(OAuth2Session, "__init__", init)


def csrf_of(text: str) -> str:
    match = re.search(r"csrf:(\S+)", text)
    assert match, text
    return match.group(1)


# -- gunicorn -----------------------------------------------------------------------------------


def create_app() -> flask.Flask:
    """The app gunicorn serves (its arguments from the FLASK_TEST_* variables)."""
    env = os.environ
    return make_login_app(env["FLASK_TEST_BACKEND"], env["FLASK_TEST_REDIS_URL"],
                          env["FLASK_TEST_NAMESPACE"], env["FLASK_TEST_BASE_URL"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn serving ``create_app()`` on a free loopback port; ``url`` is its base URL.

    ``options`` are gunicorn's worker options (one worker of 4 threads unless given); what it
    logs goes to a file (a pipe nobody reads could fill and stall it), returned by ``stop()``.
    """

    def __init__(self, backend: str, redis_url: str, namespace: str,
                 options: tuple[str, ...] = ("--workers", "1", "--threads", "4")) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "FLASK_TEST_BACKEND": backend, "FLASK_TEST_REDIS_URL": redis_url,
               "FLASK_TEST_NAMESPACE": namespace, "FLASK_TEST_BASE_URL": self.url,
               "PYTHONPATH": str(root)}
        self.log = tempfile.TemporaryFile("w+")
        # threads: the OAuth callback asks the same server for the token while it is served
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", *options,
             "--log-level", "warning", "tests.web.flask_support:create_app()"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_http(self.process, self.url + "/whoami", "gunicorn", self.logged)
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def logged(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        """Stop it; returns what it logged."""
        stop_process(self.process)
        out = self.logged()
        self.log.close()
        return out


def wait_for_http(process: subprocess.Popen, url: str, name: str, logged, timeout: float = 30
                  ) -> None:
    """Until ``url`` answers (any status); fails when ``process`` exits or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {logged()}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:  # not listening yet, or a worker still booting
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer within {timeout} s: {logged()}")


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
