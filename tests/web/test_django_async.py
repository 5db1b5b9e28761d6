"""Django's async session API (aget, aset, asave, acycle_key, aflush, ..., alogin, alogout) runs
on an AsyncRedisSessions: no blocking Redis call on the event loop (issue 18)."""

from __future__ import annotations

import asyncio

import pytest

from .django_support import APP, configure, make_user

pytest.importorskip("django")

_CALLS = ("load", "get", "set", "apply_changes", "create_anonymous", "upgrade", "regenerate",
          "kill", "killsoid", "soid", "wipe")


@pytest.fixture
def on_loop(rs, monkeypatch):
    """The blocking manager's calls made on a thread running an event loop (each still done)."""
    seen: list[str] = []
    for name in _CALLS:
        real = getattr(rs, name)

        def watched(*args, _real=real, _name=name, **kwargs):
            try:
                asyncio.get_running_loop()
                seen.append(_name)
            except RuntimeError:
                pass
            return _real(*args, **kwargs)

        monkeypatch.setattr(rs, name, watched)
    return seen


@pytest.fixture
def ours(rs):
    configure()
    from django.test import override_settings

    with override_settings(SESSION_ENGINE="redis_sessions.django",
                           REDIS_SESSIONS={"app_name": APP, "sessions": rs}):
        yield rs


def test_the_async_session_api_never_blocks_the_loop(ours, on_loop) -> None:
    from redis_sessions.django import SessionStore

    async def main() -> None:
        fresh = SessionStore()
        await fresh.aset("a", 1)
        await fresh.asave()
        key = fresh.session_key
        store = SessionStore(key)
        assert await store.aget("a") == 1
        assert await store.ahas_key("a") and list(await store.akeys()) == ["a"]
        await store.aset("b", [2])
        await store.aset_expiry(300)
        await store.asave()
        assert await SessionStore(key).aget("b") == [2]
        await store.acycle_key()
        new = store.session_key
        assert new != key and not await SessionStore().aexists(key)
        assert await SessionStore().aexists(new)
        assert (await SessionStore(new).aload())["b"] == [2]
        await store.aflush()
        assert not await SessionStore().aexists(new) and store.session_key is None
        await SessionStore.aclear_expired()

    asyncio.run(main())
    assert on_loop == []  # today's code: load, ... on the loop


def test_alogin_and_alogout(ours, on_loop) -> None:
    from django.contrib.auth import alogin, alogout
    from django.test import RequestFactory

    from redis_sessions.django import SessionStore

    user = make_user()

    async def main() -> str:
        request = RequestFactory().get("/")
        request.session = SessionStore()
        await request.session.aset("cart", "3")
        await alogin(request, user)
        key = request.session.session_key
        assert (await SessionStore(key).aget("cart")) == "3"
        assert request.session.user_id == str(user.pk)
        await alogout(request)
        assert not await SessionStore().aexists(key)
        return key

    key = asyncio.run(main())
    assert ours.get(APP, key) is None and ours.soid(APP, str(user.pk)) == []
    assert on_loop == []  # the login signal's upgrade runs in a thread, as Django runs it
