"""The URLconf of the Django test project: auth, messages, the admin, the devices pages and a few
session views."""

from django.contrib import admin, messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path


def whoami(request: HttpRequest) -> HttpResponse:
    """The user's name (or "anonymous"), then one line per pending message."""
    user = request.user
    lines = [user.get_username() if user.is_authenticated else "anonymous"]
    lines += [str(message) for message in messages.get_messages(request)]
    return HttpResponse("\n".join(lines), content_type="text/plain")


def note(request: HttpRequest) -> HttpResponse:
    messages.info(request, request.GET.get("text", "hello"))
    return redirect("/whoami/")


def bye(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye", content_type="text/plain")


def password(request: HttpRequest) -> HttpResponse:
    user = request.user
    user.set_password(request.GET["new"])
    user.save()
    if "keep" in request.GET:
        update_session_auth_hash(request, user)
    return HttpResponse("changed", content_type="text/plain")


def put(request: HttpRequest) -> HttpResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    if "boom" in request.GET:
        raise RuntimeError("boom")
    return HttpResponse("ok", content_type="text/plain")


def expiry(request: HttpRequest) -> HttpResponse:
    request.session.set_expiry(int(request.GET["seconds"]))
    return HttpResponse(str(request.session.get_expiry_age()), content_type="text/plain")


urlpatterns = [
    path("login/", LoginView.as_view()),
    path("whoami/", whoami),
    path("note/", note),
    path("logout/", bye),
    path("password/", password),
    path("put/", put),
    path("expiry/", expiry),
    path("admin/", admin.site.urls),
    path("account/devices/", include("redis_sessions.devices.django.urls")),
]
