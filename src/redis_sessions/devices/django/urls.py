"""``include("redis_sessions.devices.django.urls")``: namespace ``redis_sessions_devices``."""

from django.urls import path

from . import views

app_name = "redis_sessions_devices"

urlpatterns = [
    path("", views.DeviceListView.as_view(), name="list"),
    path("end/", views.EndDeviceView.as_view(), name="end"),
    path("end-others/", views.EndOtherDevicesView.as_view(), name="end_others"),
]
