from __future__ import annotations

from fastapi import APIRouter

from shipboard.auth.deps import AnyUser
from shipboard.auth.schemas import Principal
from shipboard.core.problems import Problem

router = APIRouter(prefix="/api/v1", tags=["auth"], responses={401: {"model": Problem}})


@router.get("/me", response_model=Principal)
async def me(caller: AnyUser) -> Principal:
    """The caller as the server sees it: user and role."""
    return caller
