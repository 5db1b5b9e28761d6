"""The views of the devices pages: a list (HTML, or JSON with ``Accept: application/json``) and
two POST actions that redirect back to it (or answer JSON).

Only a signed-in user reaches them (``LoginRequiredMixin``: a redirect to ``LOGIN_URL``, or 401
JSON); CSRF is Django's middleware's. The user's session must be a user session of
``redis_sessions.django``: the devices are its user's sessions.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import View

from ...django import SessionStore
from .. import pages

DEFAULT_BASE = "redis_sessions/base.html"


def _wants_json(request: HttpRequest) -> bool:
    return pages.wants_json(request.headers.get("Accept"))


def _store(request: HttpRequest) -> SessionStore:
    store = request.session
    if not isinstance(store, SessionStore):
        raise ImproperlyConfigured('the devices pages need SESSION_ENGINE = "redis_sessions.django"')
    return store


class _DevicesView(LoginRequiredMixin, View):
    """A signed-in user whose session is one of theirs (else: log in)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and _store(request).user_id is None:
            return self.handle_no_permission()  # signed in some other way: not a device
        return super().dispatch(request, *args, **kwargs)

    def handle_no_permission(self) -> HttpResponse:
        if _wants_json(self.request):
            return JsonResponse({"error": pages.SIGNED_OUT}, status=401)
        return super().handle_no_permission()

    def done(self, request: HttpRequest, message: str, *, ok: bool, ended: int,
             devices: list[Any]) -> HttpResponse:
        """After a POST: JSON, or the message and a redirect back to the list."""
        if _wants_json(request):
            body = pages.payload(devices, ended=ended)
            if not ok:
                body["error"] = message
            return JsonResponse(body, status=200 if ok else 404)
        (messages.success if ok else messages.error)(request, message)
        return redirect("redis_sessions_devices:list")


class DeviceListView(_DevicesView):
    """GET: the user's devices, this one first."""

    template_name = pages.TEMPLATE

    def get(self, request: HttpRequest) -> HttpResponse:
        devices = _store(request).devices()
        if _wants_json(request):
            return JsonResponse(pages.payload(devices))
        base = getattr(settings, "REDIS_SESSIONS_DEVICES_BASE", DEFAULT_BASE)
        return render(request, self.template_name, {
            "devices": devices, "base_template": base,
            "others": sum(not device.current for device in devices),
        })


def _posted_handle(request: HttpRequest) -> str:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return ""
        handle = body.get("handle") if isinstance(body, dict) else None
        return handle if isinstance(handle, str) else ""
    return request.POST.get("handle", "")


class EndDeviceView(_DevicesView):
    """POST ``handle``: log that device out (this one: a full Django logout)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        store = _store(request)
        handle = _posted_handle(request)
        devices = store.devices()
        target = next((d for d in devices if d.handle == handle), None)
        if target is None:
            ended = 0
        elif target.current:
            logout(request)  # Django's own logout: user_logged_out is sent, the session ends
            ended = 1
        else:
            ended = store.destroydevice(handle)  # 0 when it ended meanwhile
        if target is None or not ended:
            return self.done(request, pages.NOT_FOUND, ok=False, ended=0, devices=devices)
        left = [] if target.current else [d for d in devices if d.handle != handle]
        return self.done(request, pages.ended_message(target), ok=True, ended=ended,
                         devices=left)


class EndOtherDevicesView(_DevicesView):
    """POST: log out every device of the user but this one (one atomic script)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        store = _store(request)
        ended = store.destroyothers()
        current = [d for d in store.devices() if d.current] if _wants_json(request) else []
        return self.done(request, pages.others_message(ended), ok=True, ended=ended,
                         devices=current)
