"""Admin additions: a user's change page lists that user's devices, and the action "Log out
everywhere" ends every session of the selected users.

The user model's registered ``ModelAdmin`` (Django's ``UserAdmin`` or the project's own) is
extended in place, so list this app after ``django.contrib.auth`` (and after the app that
registers a custom user admin) in ``INSTALLED_APPS``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ...django import app_name, handler
from .. import pages, user_devices


@admin.action(description="Log out everywhere")
def log_out_everywhere(modeladmin: admin.ModelAdmin, request: HttpRequest,
                       queryset: QuerySet) -> None:
    """End every session of each selected user (``killsoid``)."""
    manager: Any = handler().manager
    users = list(queryset)
    ended = sum(manager.killsoid(app_name(), str(user.pk)) for user in users)
    modeladmin.message_user(
        request, f"Logged out {ended} session{'' if ended == 1 else 's'} of {len(users)} "
        f"user{'' if len(users) == 1 else 's'}.", messages.SUCCESS)


def _devices_table(user: Any) -> SafeString:
    devices = user_devices(handler().manager, app_name(), str(user.pk))  # type: ignore[arg-type]
    if not devices:
        return format_html("<p>{}</p>", "No device is signed in.")
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((d.label, d.kind, d.ip or "", pages.ago(d.last_active), pages.ago(d.signed_in))
         for d in devices))
    return format_html(
        '<table class="rs-admin-devices"><thead><tr><th>Device</th><th>Kind</th><th>IP</th>'
        "<th>Last active</th><th>Signed in</th></tr></thead><tbody>{}</tbody></table>", rows)


def _extend(registered: admin.ModelAdmin) -> type[admin.ModelAdmin]:
    base: Any = type(registered)

    class UserDevicesAdmin(base):  # type: ignore[misc, valid-type]
        actions = [*(base.actions or ()), log_out_everywhere]

        @admin.display(description="Signed-in devices")
        def signed_in_devices(self, obj: Any) -> SafeString:
            return _devices_table(obj)

        def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
            fields = super().get_readonly_fields(request, obj)
            return (*fields, "signed_in_devices") if obj is not None else fields

        def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
            fieldsets = super().get_fieldsets(request, obj)
            if obj is None:
                return fieldsets
            return [*fieldsets, ("Devices", {"fields": ("signed_in_devices",)})]

    UserDevicesAdmin.__name__ = UserDevicesAdmin.__qualname__ = f"Devices{base.__name__}"
    return UserDevicesAdmin


_User = get_user_model()
_registered = admin.site._registry.get(_User)
if _registered is not None:
    admin.site.unregister(_User)
    admin.site.register(_User, _extend(_registered))
