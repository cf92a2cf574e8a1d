from __future__ import annotations

from fastapi import APIRouter

from shipboard.auth.deps import AnyUser, DbSession
from shipboard.core.problems import Problem
from shipboard.environments import service
from shipboard.environments.schemas import EnvironmentPage, EnvironmentRead

router = APIRouter(
    prefix="/api/v1/environments",
    tags=["environments"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)


@router.get("", response_model=EnvironmentPage)
def list_environments(db: DbSession, caller: AnyUser) -> EnvironmentPage:
    """List the environments, with credential-bearing config values redacted for non-admins."""
    items = service.list_environments(db, reveal_credentials=caller.role == "admin")
    return EnvironmentPage(items=items)


@router.get("/{name}", response_model=EnvironmentRead, responses={404: {"model": Problem}})
def get_environment(name: str, db: DbSession, caller: AnyUser) -> EnvironmentRead:
    """One environment by name."""
    return service.get_environment(db, name=name, reveal_credentials=caller.role == "admin")
