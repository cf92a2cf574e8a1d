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
from shipboard.db.engine import bind_identity, system_transaction
from shipboard.http.db import READ_METHODS, RequestDb, RequestDbDep, open_request_db

_bearer = HTTPBearer(auto_error=False, description="An API token (shp_…) or a JWT")


def _erased_as(request: Request) -> Callable[[str], list[str]]:
    return lambda name: pseudonyms(request.app.state.keyring, name)


async def current_principal(
    request: Request,
    db: RequestDbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, resolved in the request's own transaction, which is then bound to it."""
    known: Principal | None = getattr(request.state, RESOLVED_PRINCIPAL, None)
    if known is not None:
        # Resolved by an unlocked dependency of this same request (``require_role_unlocked``):
        # the credentials, the session's CSRF token and the failure budget were checked there.
        await db.run(bind_identity, role=known.role, user_id=known.name)
        return known
    if credentials is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise Unauthorized()
        # The browser's pages call the API with their session cookie (fetch, EventSource);
        # a cookie rides along on cross-site requests, so writes also need the CSRF token.
        info = await session_principal(request, db, cookie)
        if request.method not in READ_METHODS:
            sessions.check_csrf(info, request.headers.get("X-CSRF-Token"))
        return info.principal
    # A request with a body was authenticated before it was read (authenticate_before_body).
    principal = getattr(request.state, EARLY_PRINCIPAL, None)
    if principal is None:
        principal = await _bearer_principal(request, db, credentials.credentials)
    await db.run(bind_identity, role=principal.role, user_id=principal.name)
    return principal


async def _bearer_principal(request: Request, db: RequestDb, token: str) -> Principal:
    """The caller a bearer token names, spending the address's failure budget when wrong.

    Only the database work runs in ``db``: the failure budget may live in Redis and a JWT's
    keys behind an HTTP URL, and neither may hold up the event loop."""
    verifier: JwtVerifier = request.app.state.jwt
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.off_loop(check_auth_failures, request)
    try:
        if token.startswith(TOKEN_PREFIX):
            return await db.run(authenticate_token, token=token)
        if verifier.enabled and token.count(".") == 2:
            claims = (
                await anyio.to_thread.run_sync(verifier.verify, token)
                if verifier.jwks is not None
                else verifier.verify(token)
            )
            return await db.run(authenticate_jwt, claims=claims, erased_as=_erased_as(request))
        raise Unauthorized()
    except Unauthorized:
        await limiter.off_loop(note_auth_failure, request)
        raise


EARLY_PRINCIPAL = "early_principal"
RESOLVED_PRINCIPAL = "resolved_principal"


async def authenticate_before_body(scope: Scope) -> bool:
    """For a request that carries a body, before any of it is read: True for a valid bearer
    token or session cookie, False for none. A wrong bearer token is refused here (401, or
    429 past the address's budget), so no one without a token makes the server read, let
    alone parse, a large body. The principal found is kept for ``current_principal``."""
    request = Request(scope)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        async with open_request_db(request, write=False, loop=True) as db:
            principal = await _bearer_principal(request, db, token.strip())
        setattr(request.state, EARLY_PRINCIPAL, principal)
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)
    try:
        async with open_request_db(request, write=False, loop=True) as db:
            await db.run(sessions.authenticate, cookie=cookie, now=utcnow(), idle=idle)
    except Unauthorized:
        return False  # the route answers for it, as it always did
    return True


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


async def session_principal(request: Request, db: RequestDb, cookie: str) -> sessions.SessionInfo:
    """Resolve a session cookie; keeps the session alive (coalesced writes)."""
    now = utcnow()
    idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)
    info = await db.run(sessions.authenticate, cookie=cookie, now=now, idle=idle)
    if info.needs_touch:
        if request.method in READ_METHODS:
            # A read request's transaction is read-only in spirit (and deferred on SQLite):
            # write the touch in its own short transaction, in a thread (it waits for the
            # write lock on SQLite).
            def touch() -> None:
                with system_transaction(request.app.state.engine) as touch_session:
                    sessions.touch(touch_session, id_hash=info.id_hash, now=now)

            await anyio.to_thread.run_sync(touch)
        else:
            await db.run(sessions.touch, id_hash=info.id_hash, now=now)
    request.state.session = info
    await db.run(bind_identity, role=info.principal.role, user_id=info.principal.name)
    return info


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    # async: a check with no I/O; as a sync dependency it cost every request a thread hop.
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(roles)
            raise Forbidden(f"role {principal.role!r} may not do this; it needs one of: {allowed}")
        return principal

    return dependency


def require_role_unlocked(*roles: Role) -> Callable[[Request, Any], Awaitable[Principal]]:
    """``require_role`` for routes that open their own transactions after a slow step (parsing
    a large upload): the caller is authenticated in a short read transaction of its own, so
    the request holds no transaction — on SQLite, no write lock — while that step runs."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        async with open_request_db(request, write=False, loop=False) as db:
            principal = await current_principal(request, db, credentials)
        # The route's own ``require_role`` then only binds it to the request's transaction.
        setattr(request.state, RESOLVED_PRINCIPAL, principal)
        if principal.role not in roles:
            allowed = ", ".join(roles)
            raise Forbidden(f"role {principal.role!r} may not do this; it needs one of: {allowed}")
        return principal

    return dependency


AnyUser = Annotated[Principal, Depends(require_role(*ROLES))]
DeployerOrAdmin = Annotated[Principal, Depends(require_role("deployer", "admin"))]
ServiceOrAdmin = Annotated[Principal, Depends(require_role("service", "admin"))]
AdminOnly = Annotated[Principal, Depends(require_role("admin"))]


def audit_context_of(request: Request, principal: Principal) -> AuditContext:
    return AuditContext(
        actor=principal.name,
        actor_role=principal.role,
        source_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


async def audit_context(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AuditContext:
    return audit_context_of(request, principal)


Audit = Annotated[AuditContext, Depends(audit_context)]
