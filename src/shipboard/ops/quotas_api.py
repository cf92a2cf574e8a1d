"""The storage usage route of an environment: under /api/v1/environments, tagged as environments,
served from ops because measuring it reads the tables of the domains above environments."""

from __future__ import annotations

from fastapi import APIRouter

from shipboard.auth.deps import AnyUser
from shipboard.core.problems import Problem
from shipboard.http.db import RequestDbDep
from shipboard.ops import quotas
from shipboard.ops.schemas import EnvironmentUsage

router = APIRouter(
    prefix="/api/v1/environments",
    tags=["environments"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)


@router.get("/{name}/usage", response_model=EnvironmentUsage, responses={404: {"model": Problem}})
async def get_usage(name: str, db: RequestDbDep, _: AnyUser) -> EnvironmentUsage:
    """Rows and estimated bytes per table of the environment, against limits.storage_quota_gb."""
    return await db.run(quotas.storage_usage, name=name)
