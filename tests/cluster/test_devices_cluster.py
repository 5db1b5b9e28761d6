"""The devices on a real Redis Cluster (3 masters + 3 replicas, layout="cluster"), through the
blocking and the async manager: sign-ins from anonymous sessions (the two-step login across
slots) record their devices, users on every master list and end theirs, "log out other devices"
is one script in the user's slot, and ownership holds across slots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from werkzeug.test import Client

from redis_sessions import RedisSessions
from redis_sessions.aio import AsyncRedisSessions
from redis_sessions.devices import from_records
from redis_sessions.wsgi import SessionMiddleware, get_session

from ..agents import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_IPHONE
from .conftest import Cluster

APP = "cldev"


@pytest.fixture
def crs(cluster: Cluster, cluster_ns: str) -> Iterator[RedisSessions]:
    manager = RedisSessions(cluster.client(), layout="cluster", namespace=cluster_ns, wipe=0)
    yield manager
    manager.close()


def test_devices_on_a_cluster(crs: RedisSessions) -> None:
    users = [f"user{i}" for i in range(12)]  # buckets on every master
    tokens: dict[str, list[str]] = {}
    for user in users:
        anonymous = crs.create_anonymous(APP, {"cart": [1]})
        first = crs.upgrade(APP, anonymous, user, "10.0.0.1", user_agent=FIREFOX_LINUX.user_agent)
        assert first["d"] == {"cart": [1]}  # taken from another slot
        second = crs.upgrade(APP, None, user, "10.0.0.2", user_agent=SAFARI_IPHONE.user_agent)
        tokens[user] = [first["token"], second["token"], crs.create(APP, user, "10.0.0.3")]
    for user in users:
        devices = from_records(crs.devices(APP, user, tokens[user][0]))
        assert devices[0].current and devices[0].label == "Firefox 133 on Linux"
        assert {d.label for d in devices[1:]} == {"Mobile Safari 17 on iOS 17", "Unknown device"}
        assert not any(t in repr(devices) for t in tokens[user])
    # another user's handle never ends a session, whatever slot it lives in
    alien = crs.devices(APP, users[1])[0]["handle"]
    assert crs.killdevice(APP, users[0], alien, by=tokens[users[0]][0]) == 0
    assert len(crs.devices(APP, users[1])) == 3
    # one device, then the others in one script
    phone = next(r["handle"] for r in crs.devices(APP, users[0]) if r["user_agent"]
                 == SAFARI_IPHONE.user_agent)
    assert crs.killdevice(APP, users[0], phone, by=tokens[users[0]][0]) == 1
    assert crs.get(APP, tokens[users[0]][1]) is None
    for user in users:
        assert crs.killsoid(APP, user, keep=tokens[user][0]) == (1 if user == users[0] else 2)
        [kept] = crs.devices(APP, user, tokens[user][0])
        assert kept["current"] and kept["user_agent"] == FIREFOX_LINUX.user_agent


def test_the_session_methods_through_the_cluster(crs: RedisSessions) -> None:
    def app(environ, start_response):
        session = get_session(environ)
        path = environ["PATH_INFO"]
        if path == "/login":
            session["seen"] = 1
            session.upgrade("erin")
            body = "in"
        elif path == "/others":
            body = str(session.destroyothers())
        else:
            body = ",".join(f"{d.label}:{int(d.current)}" for d in session.devices())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]

    wsgi = SessionMiddleware(app, app_name=APP, sessions=crs)
    laptop, phone = Client(wsgi), Client(wsgi)
    laptop.get("/login", headers={"User-Agent": FIREFOX_LINUX.user_agent})
    phone.get("/login", headers={"User-Agent": CHROME_ANDROID.user_agent})
    assert laptop.get("/").text == "Firefox 133 on Linux:1,Chrome Mobile 131 on Android 14:0"
    assert laptop.get("/others").text == "1"
    assert phone.get("/").text == "" and laptop.get("/").text == "Firefox 133 on Linux:1"


def test_the_async_manager_on_the_cluster(cluster: Cluster, cluster_ns: str) -> None:
    async def run() -> None:
        ars = AsyncRedisSessions(cluster.url, layout="cluster", namespace=cluster_ns, wipe=0)
        try:
            keep = (await ars.upgrade(APP, None, "fay", "10.0.0.1",
                                      user_agent=FIREFOX_LINUX.user_agent))["token"]
            await ars.upgrade(APP, None, "fay", "10.0.0.2", user_agent=SAFARI_IPHONE.user_agent)
            records = await ars.devices(APP, "fay", keep)
            assert sorted(r["current"] for r in records) == [False, True]
            other = next(r["handle"] for r in records if not r["current"])
            assert await ars.killdevice(APP, "fay", other, by=keep) == 1
            assert [r["current"] for r in await ars.devices(APP, "fay", keep)] == [True]
            await ars.create(APP, "fay", "10.0.0.3")
            assert await ars.killsoid(APP, "fay", keep=keep) == 1
        finally:
            await ars.close()

    asyncio.run(run())
