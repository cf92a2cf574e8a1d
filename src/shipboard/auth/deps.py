"""Request dependencies: the transaction, the caller, and who may call what.

Routes declare their permission in their signature (``_: AdminOnly``), so reading a router shows
who may call each route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from shipboard.auth.schemas import Principal
from shipboard.auth.service import authenticate_token
from shipboard.core.errors import Forbidden, Unauthorized
from shipboard.core.types import Role
from shipboard.db.engine import bind_identity, transaction

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    with transaction(
        request.app.state.engine, write=request.method not in _READ_METHODS
    ) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is an error response.
DbSession = Annotated[Session, Depends(get_db, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API token (shp_…)")


def current_principal(
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized()
    principal = authenticate_token(db, token=credentials.credentials)
    bind_identity(db, role=principal.role, user_id=principal.name)
    return principal


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(
                f"role {principal.role!r} may not do this; needs one of {', '.join(roles)}"
            )
        return principal

    return dependency


AnyUser = Annotated[Principal, Depends(require_role("viewer", "deployer", "service", "admin"))]
DeployerOrAdmin = Annotated[Principal, Depends(require_role("deployer", "admin"))]
ServiceOrAdmin = Annotated[Principal, Depends(require_role("service", "admin"))]
AdminOnly = Annotated[Principal, Depends(require_role("admin"))]
