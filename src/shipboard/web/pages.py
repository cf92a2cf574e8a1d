"""The overview; the other pages live in modules of their own beside this one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shipboard.http.db import DbSession
from shipboard.web import service
from shipboard.web.deps import Viewer
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def overview(request: Request, db: DbSession, principal: Viewer) -> Response:
    cards = service.overview(db)
    return render(request, "overview.html", principal=principal, cards=cards)
