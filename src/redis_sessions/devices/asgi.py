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

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..asgi import AsyncSession, get_session
from . import pages

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["devices_routes", "devices_router"]

NOT_JSON = "POST a JSON body (Content-Type: application/json)"


async def _signed_in(request: Request) -> AsyncSession | None:
    """The request's session once loaded, when it is a user's."""
    session = get_session(request)
    await session.load()
    return session if session.user_id is not None else None


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


async def _end(session: AsyncSession, handle: object) -> tuple[int, dict[str, Any]]:
    """End one device: (status, body)."""
    devices = await session.devices()
    target = next((d for d in devices if d.handle == handle), None)
    ended = await session.destroydevice(handle) if target is not None else 0  # type: ignore[arg-type]
    if target is None or not ended:
        return 404, pages.payload(devices, ended=0, error=pages.NOT_FOUND)
    left = [] if target.current else [d for d in devices if d.handle != handle]
    return 200, pages.payload(left, ended=ended, message=pages.ended_message(target))


async def _end_others(session: AsyncSession) -> dict[str, Any]:
    ended = await session.destroyothers()
    current = [d for d in await session.devices() if d.current]
    return pages.payload(current, ended=ended, message=pages.others_message(ended))


# -- Starlette ---------------------------------------------------------------------------------

def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def list_devices(request: Request) -> Response:
    session = await _signed_in(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    return JSONResponse(pages.payload(await session.devices()))


async def end_device(request: Request) -> Response:
    if not _is_json(request):
        return _refused(415, NOT_JSON)
    session = await _signed_in(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    try:
        body = await request.json()
    except ValueError:
        body = None
    handle = body.get("handle") if isinstance(body, dict) else None
    status, answer = await _end(session, handle)
    return JSONResponse(answer, status_code=status)


async def end_other_devices(request: Request) -> Response:
    if not _is_json(request):
        return _refused(415, NOT_JSON)
    session = await _signed_in(request)
    if session is None:
        return _refused(401, pages.SIGNED_OUT)
    return JSONResponse(await _end_others(session))


#: Starlette routes: ``Mount("/account/devices", routes=devices_routes)``
devices_routes = [
    Route("/", list_devices, methods=["GET"], name="list"),
    Route("/end", end_device, methods=["POST"], name="end"),
    Route("/end-others", end_other_devices, methods=["POST"], name="end_others"),
]


# -- FastAPI (built on first use: importing this module needs no FastAPI) ----------------------

def _build_router() -> APIRouter:
    from datetime import datetime

    from fastapi import APIRouter, Depends, HTTPException
    from fastapi.responses import JSONResponse as FastJSON
    from pydantic import BaseModel

    class DeviceModel(BaseModel):
        handle: str
        current: bool
        label: str
        browser: str | None
        os: str | None
        kind: str
        ip: str | None
        user_agent: str | None
        signed_in: datetime | None
        last_active: datetime

    class DevicesModel(BaseModel):
        devices: list[DeviceModel]

    class EndedModel(DevicesModel):
        ended: int
        message: str

    class EndModel(BaseModel):
        handle: str

    async def signed_in(request: Request) -> AsyncSession:
        session = await _signed_in(request)
        if session is None:
            raise HTTPException(401, pages.SIGNED_OUT)
        return session

    async def json_post(request: Request) -> None:
        if not _is_json(request):
            raise HTTPException(415, NOT_JSON)

    router = APIRouter(tags=["devices"])

    @router.get("/", response_model=DevicesModel, name="list")
    async def list_(session: AsyncSession = Depends(signed_in)) -> Any:
        """The signed-in user's devices, this one first."""
        return pages.payload(await session.devices())

    @router.post("/end", response_model=EndedModel, name="end",
                 dependencies=[Depends(json_post)])
    async def end(body: EndModel, session: AsyncSession = Depends(signed_in)) -> Any:
        """Log out one of the user's devices, named by its handle (404: not one of them)."""
        status, answer = await _end(session, body.handle)
        if status != 200:
            return FastJSON(answer, status_code=status)
        return answer

    @router.post("/end-others", response_model=EndedModel, name="end_others",
                 dependencies=[Depends(json_post)])
    async def end_others(session: AsyncSession = Depends(signed_in)) -> Any:
        """Log out every device of the user but this one (one atomic script)."""
        return await _end_others(session)

    return router


_router: APIRouter | None = None


def __getattr__(name: str) -> Any:
    """``devices_router``: a FastAPI ``APIRouter`` (FastAPI imported when first asked for)."""
    global _router
    if name == "devices_router":
        if _router is None:
            _router = _build_router()
        return _router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
