"""Errors on pages: HTML, and a redirect to the sign-in form when the session is missing."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from shipboard.web.deps import LoginRequired
from shipboard.web.render import render


def html_error(request: Request, exc: Exception, status: int, title: str, detail: str) -> Response:
    if isinstance(exc, LoginRequired):
        return RedirectResponse(f"/login?next={exc.detail}", status_code=303)
    info = getattr(request.state, "session", None)
    return render(
        request,
        "error.html",
        principal=info.principal if info else None,
        status_code=status,
        code=status,
        title=title,
        detail=detail,
    )
