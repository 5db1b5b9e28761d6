"""docs/devices.md's Python examples: each compiles, and those that do not configure Django run
against the test server (the only glue: the examples' Redis URL becomes the test server's, and
the managers' default namespace the test's own)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions

DOC = Path(__file__).resolve().parents[2] / "docs" / "devices.md"
URL = "redis://localhost:6379/0"


def blocks() -> list[str]:
    if not DOC.is_file():
        pytest.skip("docs/devices.md is not here (tests run from an installed wheel)")
    return re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), re.S)


@pytest.fixture
def run(redis_url, namespace, monkeypatch):
    """``run(code) -> namespace``: an example executed against the test server."""
    for cls in (RedisSessions, AsyncRedisSessions):
        monkeypatch.setitem(cls.__init__.__kwdefaults__, "namespace", namespace)

    def execute(code: str) -> dict:
        scope: dict = {"__name__": "docs_example"}
        exec(compile(code.replace(URL, redis_url), str(DOC), "exec"), scope)
        return scope

    return execute


def test_every_example_compiles() -> None:
    found = blocks()
    assert len(found) >= 9
    for code in found:
        compile(code, str(DOC), "exec")


def example(text: str) -> str:
    return next(code for code in blocks() if text in code)


def test_the_flask_example_runs(run) -> None:
    scope = run(example("devices_blueprint, url_prefix"))
    app = scope["app"]
    try:
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        reply = client.post("/login", data={"username": "ann", "csrf_token": token})
        assert reply.status_code == 302
        page = client.get("/account/devices/").get_data(as_text=True)
        assert "This device" in page and "Your devices" in page
    finally:
        app.session_interface.handler.manager.close()


def test_the_asgi_examples_run(run) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    for text in ("Mount(", "include_router"):
        app = run(example(text))["app"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with TestClient(app) as client:
                assert client.get("/account/devices/").status_code == 401  # not signed in


def test_the_manager_example_runs(run, capsys) -> None:
    run(example("rs.killdevice"))
    assert capsys.readouterr().out.splitlines() == ["Unknown device", "1", "0"]


def test_the_wsgi_examples_run(run) -> None:
    from werkzeug.test import Client

    scope = run(example("on_sign_in=tell_the_user"))
    try:
        assert Client(scope["app"]).get("/").get_data() == b"hello"
    finally:
        scope["app"].manager.close()
    assert callable(run(example("def devices_app"))["devices_app"])


def test_the_flask_signal_example_connects() -> None:
    from redis_sessions.devices.flask import device_signed_in

    scope: dict = {}
    exec(compile(example("@device_signed_in.connect"), str(DOC), "exec"), scope)
    try:
        assert device_signed_in.receivers
    finally:
        device_signed_in.disconnect(scope["new_sign_in"])
    assert not device_signed_in.receivers
