"""Who is looking at a page: the session cookie, or a redirect to the sign-in form."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request

from shipboard.auth import sessions
from shipboard.auth.deps import RESOLVED_PRINCIPAL, SESSION_COOKIE, session_principal
from shipboard.auth.schemas import Principal
from shipboard.core.errors import Forbidden, ShipboardError, Unauthorized
from shipboard.db.engine import bind_identity
from shipboard.http.db import RequestDbDep, open_request_db


class LoginRequired(ShipboardError):
    """Turned into a redirect to /login by the web error handler."""

    status_code = 303
    title = "Sign in"
    type_slug = "login-required"


async def page_user(request: Request, db: RequestDbDep) -> Principal:
    known: Principal | None = getattr(request.state, RESOLVED_PRINCIPAL, None)
    if known is not None:
        # Checked by ``form_role_unlocked`` earlier in this request: only bind it here.
        await db.run(bind_identity, role=known.role, user_id=known.name)
        return known
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired(quote(request.url.path))
    try:
        return (await session_principal(request, db, cookie)).principal
    except Unauthorized as exc:
        raise LoginRequired(quote(request.url.path)) from exc


async def csrf_checked(
    request: Request,
    principal: Annotated[Principal, Depends(page_user)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Principal:
    sessions.check_csrf(request.state.session, csrf_token)
    return principal


def page_role(*roles: str):  # type: ignore[no-untyped-def]
    async def dependency(principal: Annotated[Principal, Depends(page_user)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this page needs one of: {', '.join(roles)}")
        return principal

    return dependency


def form_role(*roles: str):  # type: ignore[no-untyped-def]
    async def dependency(principal: Annotated[Principal, Depends(csrf_checked)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this action needs one of: {', '.join(roles)}")
        return principal

    return dependency


def form_role_unlocked(*roles: str):  # type: ignore[no-untyped-def]
    """``form_role`` for forms whose route opens its own transactions after a slow step
    (parsing an uploaded report): the session is checked in a short transaction of its own,
    so no write lock is held while that step runs."""

    async def dependency(
        request: Request, csrf_token: Annotated[str, Form(max_length=200)] = ""
    ) -> Principal:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise LoginRequired(quote(request.url.path))
        try:
            async with open_request_db(request, write=True, loop=False) as db:
                info = await session_principal(request, db, cookie)
        except Unauthorized as exc:
            raise LoginRequired(quote(request.url.path)) from exc
        sessions.check_csrf(info, csrf_token)
        setattr(request.state, RESOLVED_PRINCIPAL, info.principal)
        if info.principal.role not in roles:
            raise Forbidden(f"this action needs one of: {', '.join(roles)}")
        return info.principal

    return dependency


Viewer = Annotated[Principal, Depends(page_user)]
AdminPage = Annotated[Principal, Depends(page_role("admin"))]
FormUser = Annotated[Principal, Depends(csrf_checked)]
DeployerForm = Annotated[Principal, Depends(form_role("deployer", "admin"))]
UnlockedDeployerForm = Annotated[Principal, Depends(form_role_unlocked("deployer", "admin"))]
AdminForm = Annotated[Principal, Depends(form_role("admin"))]
