"""The "your devices" endpoints for ASGI apps, as JSON: Starlette routes and a FastAPI router.

    from redis_sessions.devices.asgi import devices_routes, devices_router
    Starlette(routes=[Mount("/account/devices", routes=devices_routes)], middleware=[...])
    app.include_router(devices_router, prefix="/account/devices")         # FastAPI

Behind ``redis_sessions.asgi.SessionMiddleware``: ``GET /`` lists the user's devices
(``{"devices": [...]}``), ``POST /end`` with ``{"handle": ...}`` ends one and ``POST
/end-others`` every other (``{"ended": n, "devices": [...]}``). A session that is not a user's
gets 401. POSTs must send ``Content-Type: application/json`` (415 otherwise): a browser sends
that cross-site only after a CORS preflight, which is their CSRF protection.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..asgi import AsyncSession, get_session
from . import pages

__all__ = ["devices_routes", "devices_router"]

NOT_JSON = "POST a JSON body (Content-Type: application/json)"


async def signed_in_session(request: Request) -> AsyncSession | None:
    """The request's session once loaded, when it is a user's."""
    session = get_session(request)
    await session.load()
    return session if session.user_id is not None else None


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


async def end(session: AsyncSession, handle: object) -> tuple[int, dict[str, Any]]:
    """End one device: (status, body)."""
    devices = await session.devices()
    target = next((d for d in devices if d.handle == handle), None)
    ended = await session.destroydevice(handle) if target is not None else 0  # type: ignore[arg-type]
    if target is None or not ended:
        return 404, pages.payload(devices, ended=0, error=pages.NOT_FOUND)
    left = [] if target.current else [d for d in devices if d.handle != handle]
    return 200, pages.payload(left, ended=ended, message=pages.ended_message(target))


async def end_others(session: AsyncSession) -> dict[str, Any]:
    ended = await session.destroyothers()
    current = [d for d in await session.devices() if d.current]
    return pages.payload(current, ended=ended, message=pages.others_message(ended))


# -- Starlette ---------------------------------------------------------------------------------

def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def list_devices(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    return JSONResponse(pages.payload(await session.devices()))


async def end_device(request: Request) -> Response:
    if not is_json(request):
        return _refused(415, NOT_JSON)
    session = await signed_in_session(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    try:
        body = await request.json()
    except ValueError:
        body = None
    handle = body.get("handle") if isinstance(body, dict) else None
    status, answer = await end(session, handle)
    return JSONResponse(answer, status_code=status)


async def end_other_devices(request: Request) -> Response:
    if not is_json(request):
        return _refused(415, NOT_JSON)
    session = await signed_in_session(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    return JSONResponse(await end_others(session))


#: Starlette routes: ``Mount("/account/devices", routes=devices_routes)``
devices_routes = [
    Route("/", list_devices, methods=["GET"], name="list"),
    Route("/end", end_device, methods=["POST"], name="end"),
    Route("/end-others", end_other_devices, methods=["POST"], name="end_others"),
]


# -- FastAPI (_fastapi.py, imported on first use: importing this module needs no FastAPI) -------

def __getattr__(name: str) -> Any:
    """``devices_router``: a FastAPI ``APIRouter`` (FastAPI imported when first asked for)."""
    if name == "devices_router":
        from ._fastapi import devices_router

        return devices_router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
