from django.apps import AppConfig


class DevicesConfig(AppConfig):
    """The "your devices" pages, their templates and admin additions."""

    name = "redis_sessions.devices.django"
    label = "redis_sessions_devices"
    verbose_name = "Devices"
