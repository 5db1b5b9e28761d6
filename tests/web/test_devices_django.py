"""The Django devices app (``redis_sessions.devices.django``) through Django's test Client with
CSRF checks on and real browsers' User-Agents: the page, its JSON, its actions and refusals,
template overrides, the admin, the sign-in signal, and no token in any page or log line."""

from __future__ import annotations

import re

import pytest

from ..agents import FIREFOX_LINUX, SAFARI_IPHONE
from .devices_django_support import LIST, ClientBrowser, csrf, devices_scenario, log_in, rows
from .django_support import APP, PASSWORD, configure, engine_settings, make_user

pytest.importorskip("django")


@pytest.fixture
def ours(rs):
    configure()
    from django.test import override_settings

    with override_settings(**engine_settings("redis", rs)):
        yield rs


def test_the_devices_pages_through_the_test_client(ours, caplog) -> None:
    caplog.set_level("DEBUG")
    user = make_user()
    devices_scenario(ClientBrowser, user, PASSWORD, ours, APP)
    # no log line carries a session token (Node's format: 55 letters, "Z", the time)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records and not re.search(r"[A-Za-z0-9]{55}Z[0-9a-z]{8}", text)


def test_urls_are_namespaced() -> None:
    configure()
    from django.urls import reverse

    assert reverse("redis_sessions_devices:list") == LIST
    assert reverse("redis_sessions_devices:end") == LIST + "end/"
    assert reverse("redis_sessions_devices:end_others") == LIST + "end-others/"


def test_the_template_and_its_base_can_be_overridden(ours) -> None:
    from django.test import override_settings

    user = make_user()
    browser = ClientBrowser(FIREFOX_LINUX)
    log_in(browser, user.username, PASSWORD)
    templates = [{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": ["django.contrib.messages.context_processors.messages"],
            "loaders": [
                ("django.template.loaders.locmem.Loader", {
                    "site.html": "<main id=site>{% block content %}{% endblock %}</main>",
                }),
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }]
    with override_settings(TEMPLATES=templates, REDIS_SESSIONS_DEVICES_BASE="site.html"):
        html = browser.get(LIST).text
        assert html.startswith("<main id=site>") and "Firefox 133 on Linux" in html
    templates[0]["OPTIONS"]["loaders"][0][1]["redis_sessions/devices.html"] = (
        "{% for d in devices %}[{{ d.label }}|{{ d.kind }}|{{ d.current }}]{% endfor %}")
    with override_settings(TEMPLATES=templates):
        assert browser.get(LIST).text == "[Firefox 133 on Linux|desktop|True]"


def test_sign_ins_are_announced_by_the_signal_and_the_callback(ours) -> None:
    from django.test import override_settings

    from redis_sessions.devices.django.signals import device_signed_in

    heard: list[tuple] = []
    called: list[tuple] = []

    def receiver(sender, request, user, device, **kwargs):
        heard.append((request.path, user.pk, device))

    user = make_user()
    device_signed_in.connect(receiver)
    try:
        options = {"app_name": APP, "sessions": ours,
                   "on_sign_in": lambda session, device: called.append((session.user_id,
                                                                         device.label))}
        with override_settings(REDIS_SESSIONS=options):
            log_in(ClientBrowser(SAFARI_IPHONE), user.username, PASSWORD)
    finally:
        device_signed_in.disconnect(receiver)
    [(path, pk, device)] = heard
    assert (path, pk) == ("/login/", user.pk)
    assert device.label == "Mobile Safari 17 on iOS 17" and device.kind == "mobile"
    assert device.current and device.ip == "127.0.0.1"
    assert called == [(str(user.pk), "Mobile Safari 17 on iOS 17")]


def test_a_failing_receiver_does_not_undo_the_sign_in(ours, caplog) -> None:
    from redis_sessions.devices.django.signals import device_signed_in

    def broken(**kwargs):
        raise RuntimeError("mail server down")

    user = make_user()
    device_signed_in.connect(broken)
    try:
        browser = ClientBrowser(FIREFOX_LINUX)
        log_in(browser, user.username, PASSWORD)
    finally:
        device_signed_in.disconnect(broken)
    assert browser.get("/whoami/").text == user.username
    assert "mail server down" in caplog.text


def test_the_admin_shows_a_users_devices_and_logs_users_out_everywhere(ours) -> None:
    admin = make_user(staff=True)
    user = make_user()
    for agent in (FIREFOX_LINUX, SAFARI_IPHONE):
        log_in(ClientBrowser(agent), user.username, PASSWORD)
    staff = ClientBrowser(FIREFOX_LINUX)
    page = staff.get("/admin/login/?next=/admin/")
    staff.post("/admin/login/?next=/admin/", {"username": admin.username, "password": PASSWORD,
                                               "csrfmiddlewaretoken": csrf(page.text)})
    change = staff.get(f"/admin/auth/user/{user.pk}/change/")
    assert change.status == 200
    assert "Signed-in devices" in change.text
    assert "Firefox 133 on Linux" in change.text and "Mobile Safari 17 on iOS 17" in change.text
    for session in ours.soid(APP, str(user.pk)):
        assert session["token"] not in change.text
    listing = staff.get("/admin/auth/user/")
    assert "Log out everywhere" in listing.text
    reply = staff.post("/admin/auth/user/", {
        "action": "log_out_everywhere", "_selected_action": [str(user.pk)],
        "csrfmiddlewaretoken": csrf(listing.text)})
    assert reply.status == 302
    assert ours.soid(APP, str(user.pk)) == []
    assert "Logged out 2 sessions of 1 user." in staff.get("/admin/auth/user/").text
    assert ours.soid(APP, str(admin.pk))  # the admin's own session stays


def test_the_system_checks_pass_with_the_app_installed() -> None:
    configure()
    from django.core import checks

    assert [e for e in checks.run_checks() if e.level >= checks.ERROR] == []


def test_rows_name_devices_by_handle_only(ours) -> None:
    user = make_user()
    browser = ClientBrowser(FIREFOX_LINUX)
    log_in(browser, user.username, PASSWORD)
    [(handle, current)] = rows(browser.get(LIST).text)
    assert current and re.fullmatch(r"[0-9a-f]{24}", handle)
    assert handle not in (browser.session_key or "")
