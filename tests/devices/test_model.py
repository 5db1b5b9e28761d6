"""What a device is, decided once without a framework: User-Agent parsing (ua-parser, and the
short form without it), the immutable typed Device, its JSON, the order of a listing, and the
pages' shared helpers."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from redis_sessions.devices import KINDS, Device, agents, describe, from_records
from redis_sessions.devices import pages

from ..agents import ALL, BROWSERS


@pytest.mark.parametrize("agent", ALL, ids=lambda a: a.label)
def test_real_user_agents_are_named_and_classified(agent) -> None:
    described = describe(agent.user_agent)
    assert (described.label, described.kind) == (agent.label, agent.kind)
    assert described.kind in KINDS


def test_browsers_and_systems_are_split_out() -> None:
    firefox = describe(BROWSERS[0].user_agent)
    assert (firefox.browser, firefox.os) == ("Firefox 133", "Linux")
    assert describe(None) is agents.UNKNOWN and describe("") is agents.UNKNOWN
    assert agents.UNKNOWN.label == "Unknown device"


def test_the_compiled_resolver_is_used_when_installed() -> None:
    pytest.importorskip("ua_parser_rs", reason="ua-parser-rs is not installed here")
    assert agents.parser_name() == "ua-parser (regex)"


def test_without_ua_parser_the_label_is_a_short_form_of_the_raw_string(monkeypatch) -> None:
    monkeypatch.setattr(agents, "_parser", False)  # as if ua-parser were not installed
    agents.describe.cache_clear()
    try:
        long = describe(BROWSERS[1].user_agent)
        assert long.label == "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Apple\u2026"
        assert len(long.label) == agents.SHORT_LENGTH
        assert (long.browser, long.os, long.kind) == (None, None, "other")
        assert describe("curl/8.5.0").label == "curl/8.5.0"
        assert agents.parser_name() == "none"
    finally:
        agents.describe.cache_clear()


def record(**changes) -> dict:
    base = {"handle": "0123456789abcdef01234567", "current": False, "ip": "203.0.113.7",
            "last_active": 1_800_000_000, "signed_in": 1_799_990_000,
            "user_agent": BROWSERS[0].user_agent}
    return {**base, **changes}


def test_a_device_is_typed_immutable_and_its_times_are_aware() -> None:
    device = Device.from_record(record())
    assert device.last_active == datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc)
    assert device.signed_in is not None and device.signed_in.tzinfo is timezone.utc
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.current = True  # type: ignore[misc]
    body = device.as_json()
    assert body == {
        "handle": "0123456789abcdef01234567", "current": False,
        "label": "Firefox 133 on Linux", "browser": "Firefox 133", "os": "Linux",
        "kind": "desktop", "ip": "203.0.113.7", "user_agent": BROWSERS[0].user_agent,
        "signed_in": "2027-01-15T05:13:20Z", "last_active": "2027-01-15T08:00:00Z",
    }
    json.dumps(body)
    assert Device.from_record(record(signed_in=None, user_agent=None)).as_json()["signed_in"] is None


def test_a_sign_in_is_never_after_the_last_activity() -> None:
    # a Node token's time is its process's clock, the last activity Redis's: they may disagree
    device = Device.from_record(record(signed_in=1_800_000_002, last_active=1_800_000_000))
    assert device.signed_in == device.last_active


def test_a_listing_puts_this_device_first_then_the_most_recent() -> None:
    devices = from_records([
        record(handle="a" * 24, last_active=100), record(handle="b" * 24, last_active=300),
        record(handle="c" * 24, last_active=50, current=True), record(handle="d" * 24,
                                                                      last_active=200),
    ])
    assert [d.handle[0] for d in devices] == ["c", "b", "d", "a"]


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/json", True),
    ("application/json, text/plain, */*", True),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
    ("text/html, application/json;q=0.5", False),
    ("*/*", False), ("", False), (None, False), ("application/json;q=0", False),
])
def test_json_is_given_to_who_asks_for_it_first(accept, expected) -> None:
    assert pages.wants_json(accept) is expected


def test_relative_times() -> None:
    now = datetime(2027, 1, 15, tzinfo=timezone.utc)
    for seconds, text in ((5, "just now"), (61, "1 minute ago"), (7200, "2 hours ago"),
                          (86400 * 3, "3 days ago"), (86400 * 40, "6 Dec 2026")):
        assert pages.ago(now - timedelta(seconds=seconds), now) == text
    assert pages.ago(None) == ""


def test_feedback_wording_and_icons() -> None:
    device = Device.from_record(record())
    assert pages.ended_message(device) == "Logged out Firefox 133 on Linux."
    assert pages.others_message(0) == "No other device was signed in."
    assert pages.others_message(1) == "Logged out 1 other device."
    assert pages.others_message(3) == "Logged out 3 other devices."
    for kind in KINDS:
        assert pages.icon(kind).startswith("<svg") and 'aria-hidden="true"' in pages.icon(kind)
    assert ".rs-devices" in pages.stylesheet()
