"""The "your devices" pages as a Django app.

    INSTALLED_APPS += ["redis_sessions.devices.django"]       # after django.contrib.auth
    path("account/devices/", include("redis_sessions.devices.django.urls"))

URL namespace ``redis_sessions_devices``: ``list`` (GET), ``end`` (POST ``handle``) and
``end_others`` (POST). The page is ``redis_sessions/devices.html`` (override it by that path);
it extends ``settings.REDIS_SESSIONS_DEVICES_BASE`` (default ``redis_sessions/base.html``), whose
``content`` block it fills. ``signals.device_signed_in`` is sent when ``django.contrib.auth``
logs a user in. In the admin, a user's change page lists their devices and the action "Log out
everywhere" ends every session of the selected users.
"""
