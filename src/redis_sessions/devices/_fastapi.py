"""``devices_router``: the devices endpoints as a FastAPI ``APIRouter`` with typed models (the
Starlette routes' logic, asgi.py). No ``from __future__ import annotations`` here: FastAPI reads
the endpoints' annotations at runtime."""

from datetime import datetime
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..asgi import AsyncSession
from . import pages
from .asgi import NOT_JSON, end, end_others, is_json, signed_in_session

__all__ = ["devices_router"]


class DeviceModel(BaseModel):
    """One signed-in session of the user (``redis_sessions.devices.Device``)."""

    handle: str
    current: bool
    label: str
    browser: Optional[str]
    os: Optional[str]
    kind: str
    ip: Optional[str]
    user_agent: Optional[str]
    signed_in: Optional[datetime]
    last_active: datetime


class DevicesModel(BaseModel):
    devices: list[DeviceModel]


class EndedModel(DevicesModel):
    ended: int
    message: str


class EndModel(BaseModel):
    handle: str


async def signed_in(request: Request) -> AsyncSession:
    session = await signed_in_session(request)
    if session is None:
        raise HTTPException(401, pages.SIGNED_OUT)
    return session


async def json_post(request: Request) -> None:
    if not is_json(request):
        raise HTTPException(415, NOT_JSON)


devices_router = APIRouter(tags=["devices"])


@devices_router.get("/", response_model=DevicesModel, name="list")
async def list_devices(session: AsyncSession = Depends(signed_in)) -> Any:
    """The signed-in user's devices, this one first."""
    return pages.payload(await session.devices())


@devices_router.post("/end", response_model=EndedModel, name="end",
                     dependencies=[Depends(json_post)])
async def end_device(body: EndModel, session: AsyncSession = Depends(signed_in)) -> Any:
    """Log out one of the user's devices, named by its handle (404: not one of them)."""
    status, answer = await end(session, body.handle)
    if status != 200:
        return JSONResponse(answer, status_code=status)
    return answer


@devices_router.post("/end-others", response_model=EndedModel, name="end_others",
                     dependencies=[Depends(json_post)])
async def end_other_devices(session: AsyncSession = Depends(signed_in)) -> Any:
    """Log out every device of the user but this one (one atomic script)."""
    return await end_others(session)
