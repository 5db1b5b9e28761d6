"""Settings of the Django test project (in-process tests and the gunicorn server alike).

The sqlite file comes from ``RS_DJANGO_DB``; the gunicorn process also gets its Redis from
``RS_DJANGO_REDIS`` + ``RS_DJANGO_NAMESPACE`` (in-process tests set REDIS_SESSIONS per test).
"""

import os

DEBUG = False
SECRET_KEY = "redis-sessions-tests"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.web.django_urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "redis_sessions.devices.django",  # the devices pages (after django.contrib.auth)
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("RS_DJANGO_DB", ":memory:"),
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "loaders": [
                ("django.template.loaders.locmem.Loader", {
                    "registration/login.html": (
                        '<form method="post">{% csrf_token %}{{ form }}</form>'
                    ),
                }),
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }
]
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cache" if os.environ.get("RS_DJANGO_ENGINE") == "cache"
    else "redis_sessions.django"
)
CSRF_USE_SESSIONS = True
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_REDIRECT_URL = "/whoami/"
LOGIN_URL = "/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

if os.environ.get("RS_DJANGO_REDIS"):
    from redis_sessions import RedisSessions

    REDIS_SESSIONS = {
        "app_name": os.environ.get("RS_DJANGO_APP", "djapp"),
        "sessions": RedisSessions(os.environ["RS_DJANGO_REDIS"],
                                  namespace=os.environ["RS_DJANGO_NAMESPACE"], wipe=0),
    }
