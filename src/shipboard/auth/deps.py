"""Request dependencies: the caller, who may call what, audit and limits (the transaction is
:mod:`shipboard.http.db`'s).

Routes declare their permission in their signature (``caller: AdminOnly``), so reading a router
shows who may call each route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.types import Scope

from shipboard.audit.service import AuditContext
from shipboard.auth import sessions
from shipboard.auth.jwt import JwtVerifier
from shipboard.auth.pseudonyms import pseudonyms
from shipboard.auth.schemas import Principal
from shipboard.auth.service import TOKEN_PREFIX, authenticate_jwt, authenticate_token
from shipboard.core.errors import Forbidden, Unauthorized
from shipboard.core.ratelimit import RateLimiter
from shipboard.core.time import utcnow
from shipboard.core.types import ROLES, Role
from shipboard.db.engine import bind_identity, system_transaction, transaction
from shipboard.http.db import READ_METHODS, DbSession, connection_slots

_bearer = HTTPBearer(auto_error=False, description="An API token (shp_…) or a JWT")


def _erased_as(request: Request) -> Callable[[str], list[str]]:
    return lambda name: pseudonyms(request.app.state.keyring, name)


def current_principal(
    request: Request,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise Unauthorized()
        # The browser's pages call the API with their session cookie (fetch, EventSource);
        # a cookie rides along on cross-site requests, so writes also need the CSRF token.
        info = session_principal(request, db, cookie)
        if request.method not in READ_METHODS:
            sessions.check_csrf(info, request.headers.get("X-CSRF-Token"))
        return info.principal
    # A request with a body was authenticated before it was read (authenticate_before_body).
    principal = getattr(request.state, EARLY_PRINCIPAL, None)
    if principal is None:
        principal = _bearer_principal(request, db, credentials.credentials)
    bind_identity(db, role=principal.role, user_id=principal.name)
    return principal


def _bearer_principal(request: Request, db: Session, token: str) -> Principal:
    """The caller a bearer token names, spending the address's failure budget when wrong."""
    verifier: JwtVerifier = request.app.state.jwt
    check_auth_failures(request)
    try:
        if token.startswith(TOKEN_PREFIX):
            return authenticate_token(db, token=token)
        if verifier.enabled and token.count(".") == 2:
            return authenticate_jwt(
                db, claims=verifier.verify(token), erased_as=_erased_as(request)
            )
        raise Unauthorized()
    except Unauthorized:
        note_auth_failure(request)
        raise


EARLY_PRINCIPAL = "early_principal"


async def authenticate_before_body(scope: Scope) -> bool:
    """For a request that carries a body, before any of it is read: True for a valid bearer
    token or session cookie, False for none. A wrong bearer token is refused here (401, or
    429 past the address's budget), so no one without a token makes the server read, let
    alone parse, a large body. The principal found is kept for ``current_principal``."""
    request = Request(scope)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():

        def bearer() -> Principal:
            with transaction(request.app.state.engine, write=False) as db:
                return _bearer_principal(request, db, token.strip())

        async with connection_slots(request):
            principal = await anyio.to_thread.run_sync(bearer)
        setattr(request.state, EARLY_PRINCIPAL, principal)
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False

    def session_valid() -> bool:
        idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)
        try:
            with transaction(request.app.state.engine, write=False) as db:
                sessions.authenticate(db, cookie=cookie, now=utcnow(), idle=idle)
        except Unauthorized:
            return False  # the route answers for it, as it always did
        return True

    async with connection_slots(request):
        return await anyio.to_thread.run_sync(session_valid)


SESSION_COOKIE = "shipboard_session"
_AUTH_FAILURES = "auth-failures"


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_auth_failures(request: Request) -> None:
    """429 once this client address has presented ``auth_failures_per_minute`` wrong
    credentials: checked before the credentials are, so a right guess past the budget is
    refused like a wrong one (a brute force learns nothing until Retry-After)."""
    per_minute = request.app.state.settings.auth_failures_per_minute
    if per_minute:
        limiter: RateLimiter = request.app.state.rate_limiter
        limiter.check(
            per_minute, _AUTH_FAILURES, _client_address(request), what="wrong credentials"
        )


def note_auth_failure(request: Request) -> None:
    """Count one wrong token, password or code against this client address."""
    per_minute = request.app.state.settings.auth_failures_per_minute
    if per_minute:
        limiter: RateLimiter = request.app.state.rate_limiter
        limiter.spend(per_minute, _AUTH_FAILURES, _client_address(request))


def session_principal(request: Request, db: Session, cookie: str) -> sessions.SessionInfo:
    """Resolve a session cookie; keeps the session alive (coalesced writes)."""
    now = utcnow()
    idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)
    info = sessions.authenticate(db, cookie=cookie, now=now, idle=idle)
    if info.needs_touch:
        if request.method in READ_METHODS:
            # A read request's transaction is read-only in spirit (and deferred on SQLite):
            # write the touch in its own short transaction.
            with system_transaction(request.app.state.engine) as touch_session:
                sessions.touch(touch_session, id_hash=info.id_hash, now=now)
        else:
            sessions.touch(db, id_hash=info.id_hash, now=now)
    request.state.session = info
    bind_identity(db, role=info.principal.role, user_id=info.principal.name)
    return info


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    # async: a check with no I/O; as a sync dependency it cost every request a thread hop.
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(roles)
            raise Forbidden(f"role {principal.role!r} may not do this; it needs one of: {allowed}")
        return principal

    return dependency


def require_role_unlocked(*roles: Role) -> Callable[[Request, Any], Principal]:
    """``require_role`` for routes that open their own transactions after a slow step (parsing
    a large upload): the caller is authenticated in a short read transaction of its own, so
    the request holds no transaction — on SQLite, no write lock — while that step runs."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        with transaction(request.app.state.engine, write=False) as db:
            principal = current_principal(request, db, credentials)
        if principal.role not in roles:
            allowed = ", ".join(roles)
            raise Forbidden(f"role {principal.role!r} may not do this; it needs one of: {allowed}")
        return principal

    return dependency


AnyUser = Annotated[Principal, Depends(require_role(*ROLES))]
DeployerOrAdmin = Annotated[Principal, Depends(require_role("deployer", "admin"))]
ServiceOrAdmin = Annotated[Principal, Depends(require_role("service", "admin"))]
AdminOnly = Annotated[Principal, Depends(require_role("admin"))]


def audit_context(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AuditContext:
    return AuditContext(
        actor=principal.name,
        actor_role=principal.role,
        source_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


Audit = Annotated[AuditContext, Depends(audit_context)]
