"""``device_signed_in``: sent when ``django.contrib.auth.login`` signs a user in on a device.

Receivers get ``sender`` (the ``SessionStore`` class), ``request``, ``user`` and ``device`` (the
new session's ``redis_sessions.devices.Device``): enough to mail "New sign-in from Chrome on
Windows". A receiver's error is logged, never raised: the sign-in has happened.
"""

from django.dispatch import Signal

device_signed_in = Signal()
