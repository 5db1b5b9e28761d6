"""Helpers of the Django tests: one settings configuration per process (django_settings.py,
sqlite in a tmp dir), per-test session engines, users, and a gunicorn server on loopback."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django")

APP = "djapp"
PASSWORD = "pw-1234"
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.web.django_settings"


def configure() -> None:
    """Configure Django once for this process from django_settings.py, with a migrated sqlite
    database in a tmp dir."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if settings.configured:
        if settings.ROOT_URLCONF != "tests.web.django_urls" or \
                "django.contrib.auth" not in settings.INSTALLED_APPS:
            pytest.fail("Django was configured by someone else in this process: configure "
                        "it only through tests/web/django_support.configure()")
        return
    tmp = tempfile.mkdtemp(prefix="rs-django-")
    atexit.register(shutil.rmtree, tmp, True)
    os.environ["RS_DJANGO_DB"] = os.path.join(tmp, "db.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def engine_settings(engine: str, rs) -> dict:
    """override_settings() arguments for session engine "redis" (ours, over ``rs``) or "cache"
    (Django's cache backend on LocMemCache)."""
    if engine == "redis":
        return {"SESSION_ENGINE": "redis_sessions.django",
                "REDIS_SESSIONS": {"app_name": APP, "sessions": rs}}
    return {"SESSION_ENGINE": "django.contrib.sessions.backends.cache",
            "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": secrets.token_hex(4)}}}


def make_user(staff: bool = False):
    """A new user (unique name) with password PASSWORD."""
    from django.contrib.auth.models import User

    name = "u" + secrets.token_hex(4)
    return User.objects.create_user(name, password=PASSWORD, is_staff=staff, is_superuser=staff)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(redis_url: str, namespace: str) -> Iterator[str]:
    """gunicorn serving the test project (same sqlite file) on a free loopback port; yields its
    base URL and kills it afterwards."""
    configure()
    port = free_port()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS, RS_DJANGO_REDIS=redis_url,
               RS_DJANGO_NAMESPACE=namespace, RS_DJANGO_APP=APP)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--chdir", str(ROOT), "tests.web.django_wsgi:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30  # a startup wait, not a timed assert
        while True:
            if process.poll() is not None:
                pytest.fail("gunicorn exited: " + process.stderr.read().decode()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("gunicorn did not listen within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
