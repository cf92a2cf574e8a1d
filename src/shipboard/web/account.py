"""Sign in (password, then a TOTP code once enrolled), sign out, and TOTP enrolment."""

from __future__ import annotations

import hmac
import secrets
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from shipboard.audit.service import AuditContext
from shipboard.auth import repository, sessions, totp
from shipboard.auth.deps import SESSION_COOKIE, check_auth_failures, note_auth_failure
from shipboard.auth.schemas import Principal
from shipboard.core.errors import RateLimited
from shipboard.core.time import utcnow
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.web.deps import FormUser, Viewer
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "shipboard_login_csrf"
PENDING_COOKIE = "shipboard_pending"


def _safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would make the sign-in page a phishing tool."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _login_form(
    request: Request, *, error: str | None = None, status_code: int = 200, next_path: str = "/"
) -> Response:
    # Login CSRF (double submit): a page from elsewhere cannot sign you in as someone else.
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        error=error,
        login_csrf=token,
        next_path=_safe_next(next_path),
        status_code=status_code,
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return _login_form(request, next_path=next)


@router.post("/login")
def login(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 403).
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return _login_form(
            request, error="the form expired; try again", status_code=403, next_path=next
        )
    try:
        check_auth_failures(request)
    except RateLimited as exc:
        limited = _login_form(request, error=exc.detail, status_code=429, next_path=next)
        limited.headers.update(exc.headers)
        return limited
    outcome = sessions.login(
        db, name=username.strip(), password=password, source_ip=_ip(request), now=utcnow()
    )
    if not outcome.ok or outcome.cookie is None:
        note_auth_failure(request)
        # Not an exception: the failed attempt (and a lockout) must be committed. A 200 with
        # the form again, as browsers expect of a form with a mistake in it.
        return _login_form(request, error=outcome.message, next_path=next)
    response: Response
    if outcome.second_factor:
        response = RedirectResponse(f"/login/code?next={_safe_next(next)}", status_code=303)
        _set_cookie(request, response, PENDING_COOKIE, outcome.cookie, 600)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(
        request, response, SESSION_COOKIE, outcome.cookie, int(sessions.MAX_AGE.total_seconds())
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.get("/login/code")
async def code_page(request: Request, next: str = "/") -> Response:
    if not request.cookies.get(PENDING_COOKIE):
        return RedirectResponse("/login", status_code=303)
    return render(request, "login_code.html", next_path=_safe_next(next))


@router.post("/login/code")
def code(
    request: Request,
    db: DbSession,
    code: Annotated[str, Form(max_length=20)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    # The pending cookie is itself the CSRF defence here: SameSite=Lax keeps it off
    # cross-site POSTs, and it is useless without the second factor.
    pending = request.cookies.get(PENDING_COOKIE)
    if not pending:
        return RedirectResponse("/login", status_code=303)
    response: Response
    try:
        check_auth_failures(request)
    except RateLimited as exc:
        response = render(
            request,
            "login_code.html",
            error=exc.detail,
            next_path=_safe_next(next),
            status_code=429,
        )
        response.headers.update(exc.headers)
        return response
    outcome = sessions.second_factor(
        db,
        cookie=pending,
        code=code,
        keyring=request.app.state.keyring,
        source_ip=_ip(request),
        now=utcnow(),
    )
    if not outcome.ok or outcome.cookie is None:
        note_auth_failure(request)
        response = render(
            request,
            "login_code.html",
            error=outcome.message,
            next_path=_safe_next(next),
        )
        if "expired" in outcome.message or "locked" in outcome.message:
            response.delete_cookie(PENDING_COOKIE, path="/")
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(
        request, response, SESSION_COOKIE, outcome.cookie, int(sessions.MAX_AGE.total_seconds())
    )
    response.delete_cookie(PENDING_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, principal: FormUser) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        sessions.logout(db, cookie=cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account")
async def account(request: Request, db: RequestDbDep, principal: Viewer) -> Response:
    user = await db.run(repository.user_by_id, principal.user_id)
    secret = None
    if sessions.enrolling(user):
        # Decrypting may read the key file (another process rotated the key): off the loop.
        secret = await anyio.to_thread.run_sync(
            partial(sessions.pending_secret, user, keyring=request.app.state.keyring)
        )
    uri = totp.provisioning_uri(secret, account=principal.name) if secret else None
    return render(
        request,
        "account.html",
        principal=principal,
        enrolled=bool(user and user.totp_enabled_at),
        enrolled_at=user.totp_enabled_at if user else None,
        secret=secret,
        uri=uri,
        qr=totp.qr_svg(uri) if uri else None,
        error=request.query_params.get("error"),
    )


def _audit(request: Request, principal: Principal) -> AuditContext:
    return AuditContext(actor=principal.name, actor_role=principal.role, source_ip=_ip(request))


def _reauthenticated(
    request: Request, db: DbSession, principal: Principal, password: str, code: str
) -> bool:
    """The password, or a current code, again: a session alone cannot change the second factor."""
    check_auth_failures(request)
    ok = sessions.reauthenticate(
        db,
        user_id=principal.user_id,
        password=password,
        code=code,
        keyring=request.app.state.keyring,
        source_ip=_ip(request),
        now=utcnow(),
    )
    if not ok and (password or code):
        note_auth_failure(request)
    return ok


@router.post("/account/totp")
def start_totp(
    request: Request,
    db: DbSession,
    principal: FormUser,
    password: Annotated[str, Form(max_length=1000)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    if not _reauthenticated(request, db, principal, password, code):
        return RedirectResponse("/account?error=reauth", status_code=303)
    sessions.start_enrolment(
        db,
        user_id=principal.user_id,
        keyring=request.app.state.keyring,
        audit_context=_audit(request, principal),
    )
    return RedirectResponse("/account", status_code=303)


@router.post("/account/totp/remove")
def remove_totp(
    request: Request,
    db: DbSession,
    principal: FormUser,
    password: Annotated[str, Form(max_length=1000)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    if not _reauthenticated(request, db, principal, password, code):
        return RedirectResponse("/account?error=reauth", status_code=303)
    sessions.remove_totp(db, user_id=principal.user_id, audit_context=_audit(request, principal))
    return RedirectResponse("/account", status_code=303)


@router.post("/account/totp/confirm")
def confirm_totp(
    request: Request,
    db: DbSession,
    principal: FormUser,
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    ok = sessions.confirm_enrolment(
        db,
        user_id=principal.user_id,
        code=code,
        keyring=request.app.state.keyring,
        now=utcnow(),
        audit_context=_audit(request, principal),
    )
    return RedirectResponse("/account" if ok else "/account?error=wrong+code", status_code=303)
