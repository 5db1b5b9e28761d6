"""``{% load redis_sessions_devices %}``: the filters of the devices page."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString, mark_safe

from ... import pages

register = template.Library()


@register.filter
def device_icon(kind: str) -> SafeString:
    """The inline SVG icon of a device kind."""
    return mark_safe(pages.icon(kind))  # noqa: S308 - our own constant markup


@register.filter
def device_ago(moment: datetime | None) -> str:
    """"just now", "5 minutes ago", ... (``pages.ago``)."""
    return pages.ago(moment)


@register.simple_tag
def devices_stylesheet() -> SafeString:
    """The page's CSS, for a ``<style>`` element."""
    return mark_safe(pages.stylesheet())  # noqa: S308 - a file shipped with the package
