"""Tests of a Django project keep their sessions apart from the developer's (issue 18, item 7).

A developer's session lives in the project's namespace; the project's own test suite then runs,
under Django's test runner and under pytest-django, each in a subprocess (as a developer runs
``manage.py test``) against the same Redis. Its tests must see only their own sessions, and its
``destroyall()`` must not log the developer out; nothing of the run is left behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap

import pytest

from redis_sessions import RedisSessions

from .django_support import APP, ROOT, SETTINGS

pytest.importorskip("django")

TESTS = textwrap.dedent('''
    from django.contrib.auth.models import User
    from django.test import TestCase

    from redis_sessions.django import SessionStore, flush_test_sessions, handler


    class SessionsApart(TestCase):
        def setUp(self):  # no session of an earlier test leaks into this one
            flush_test_sessions()

        def test_a_login_sees_only_its_own_sessions(self):
            user = User.objects.create_user("dev", password="pw")
            self.assertEqual(user.pk, 1)  # the developer's user id too: a fresh test database
            self.assertTrue(self.client.login(username="dev", password="pw"))
            key = self.client.cookies["sessionid"].value
            self.assertTrue(handler().manager.namespace.startswith("test_"))
            self.assertEqual([s["token"] for s in SessionStore(key).soid()], [key])
            self.assertEqual(SessionStore(key).destroyall(), 1)

        def test_the_next_test_starts_clean(self):
            user = User.objects.create_user("dev", password="pw")
            self.assertEqual(handler().manager.soid("djapp", str(user.pk)), [])
            self.client.force_login(user)  # left for the end of the run to remove
''')


@pytest.fixture
def project(tmp_path):
    (tmp_path / "isolation_tests").mkdir()
    (tmp_path / "isolation_tests" / "__init__.py").write_text("")
    (tmp_path / "isolation_tests" / "test_sessions.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def _env(redis_url: str, namespace: str, project) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), str(project), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, DJANGO_SETTINGS_MODULE=SETTINGS,
                RS_DJANGO_REDIS=redis_url, RS_DJANGO_NAMESPACE=namespace, RS_DJANGO_APP=APP,
                RS_DJANGO_DB=str(project / "db.sqlite3"))


@pytest.mark.parametrize("runner", ["django", "pytest-django"])
def test_a_projects_test_run_keeps_to_its_own_namespace(redis_url, redis_client, project,
                                                        runner) -> None:
    if runner == "pytest-django":
        pytest.importorskip("pytest_django", reason="pytest-django (the test extra) is missing")
    namespace = "rsdev" + secrets.token_hex(4)
    with RedisSessions(redis_url, namespace=namespace, wipe=0) as rs:
        developer = rs.create(APP, "1", "10.0.0.1", d={"admin": True})
        stale = rs.in_namespace(f"test_{namespace}")  # what a crashed earlier run left
        stale.create(APP, "1", "10.0.0.9")
        stale.close()
        if runner == "django":
            command = [sys.executable, "-m", "django", "test", "isolation_tests", "-v", "2"]
        else:
            command = [sys.executable, "-m", "pytest", "-q", "-p", "pytest_django",
                       "-p", "no:cacheprovider", "-c", str(project / "pytest.ini"),
                       str(project / "isolation_tests")]
        done = subprocess.run(command, cwd=project, env=_env(redis_url, namespace, project),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert rs.get(APP, developer)["d"] == {"admin": True}  # still logged in
        assert [s["token"] for s in rs.soid(APP, "1")] == [developer]
    try:
        assert list(redis_client.scan_iter(match=f"test_{namespace}:*")) == []
    finally:
        keys = list(redis_client.scan_iter(match=f"*{namespace}:*"))
        if keys:
            redis_client.delete(*keys)


def test_flush_test_sessions_is_refused_outside_a_test_run(rs) -> None:
    from django.test import override_settings

    from .django_support import configure

    configure()
    from redis_sessions.django import flush_test_sessions

    with override_settings(SESSION_ENGINE="redis_sessions.django",
                           REDIS_SESSIONS={"app_name": APP, "sessions": rs}):
        token = rs.create(APP, "alice", "10.0.0.1")
        with pytest.raises(RuntimeError):
            flush_test_sessions()
        assert rs.get(APP, token) is not None
