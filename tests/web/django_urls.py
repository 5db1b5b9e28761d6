"""The URLconf of the Django tests: every path goes to the connect-redis-sessions test routes."""

from django.http import HttpResponse
from django.urls import re_path

from .conftest import handle


def view(request):
    session = getattr(request, "session", None)
    if request.GET.get("raise"):
        session["lost"] = 1
        raise RuntimeError("boom")
    return HttpResponse(handle(session, request.GET.dict()), content_type="text/plain")


urlpatterns = [re_path(r"^.*$", view)]
