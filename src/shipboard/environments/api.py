from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from shipboard.auth.deps import AdminOnly, AnyUser, Audit
from shipboard.core.bodylimit import read_limited_body
from shipboard.core.errors import InvalidInput
from shipboard.core.problems import Problem
from shipboard.environments import service
from shipboard.environments.deps import EnvironmentRateLimit, environments_shown
from shipboard.environments.schemas import (
    EnvironmentPage,
    EnvironmentRead,
    EnvironmentUpdate,
    FeatureToggle,
    SecretKey,
    SecretList,
    SecretRead,
    SecretWrite,
)
from shipboard.http.db import DbSession, RequestDbDep

router = APIRouter(
    prefix="/api/v1/environments",
    tags=["environments"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    422: {"model": Problem},
    429: {"model": Problem},
}


@router.get("", response_model=EnvironmentPage)
async def list_environments(request: Request, db: RequestDbDep, caller: AnyUser) -> EnvironmentPage:
    """List the environments; credential-bearing config values are redacted for non-admins."""
    rows = await db.run(service.ordered_environments)
    reveal = caller.role == "admin"
    return EnvironmentPage(items=await environments_shown(request, rows, reveal_credentials=reveal))


@router.get("/{name}", response_model=EnvironmentRead, responses={404: {"model": Problem}})
async def get_environment(
    name: str, request: Request, db: RequestDbDep, caller: AnyUser
) -> EnvironmentRead:
    """One environment by name."""
    row = await db.run(service.require_environment, name)
    reveal = caller.role == "admin"
    return (await environments_shown(request, [row], reveal_credentials=reveal))[0]


@router.put("/{name}", response_model=EnvironmentRead, responses=WRITE_RESPONSES)
def replace_environment(
    name: str,
    data: EnvironmentUpdate,
    request: Request,
    db: DbSession,
    _: AdminOnly,
    audit: Audit,
    __: EnvironmentRateLimit,
) -> EnvironmentRead:
    """Replace domain, config (checked against EnvironmentConfig), features and limits."""
    return service.replace_environment(
        db,
        name=name,
        data=data,
        keyring=request.app.state.keyring,
        audit_context=audit,
        outbound=request.app.state.settings.outbound_policy,
        store_configured=bool(request.app.state.settings.prometheus_url),
    )


@router.patch(
    "/{name}",
    response_model=EnvironmentRead,
    responses=WRITE_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def patch_environment(
    name: str,
    patch: Annotated[dict[str, Any], Body(description="A JSON Merge Patch (RFC 7396)")],
    request: Request,
    db: DbSession,
    _: AdminOnly,
    audit: Audit,
    __: EnvironmentRateLimit,
) -> EnvironmentRead:
    """Change parts of an environment with a JSON Merge Patch; `null` removes a key."""
    return service.patch_environment(
        db,
        name=name,
        patch=patch,
        keyring=request.app.state.keyring,
        audit_context=audit,
        outbound=request.app.state.settings.outbound_policy,
        store_configured=bool(request.app.state.settings.prometheus_url),
    )


@router.put("/{name}/features/{flag}", response_model=EnvironmentRead, responses=WRITE_RESPONSES)
def set_feature(
    name: str,
    flag: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
    toggle: FeatureToggle,
    request: Request,
    db: DbSession,
    _: AdminOnly,
    audit: Audit,
    __: EnvironmentRateLimit,
) -> EnvironmentRead:
    """Turn one feature flag on or off."""
    return service.set_feature(
        db,
        name=name,
        flag=flag,
        enabled=toggle.enabled,
        audit_context=audit,
        keyring=request.app.state.keyring,
    )


@router.get("/{name}/secrets", response_model=SecretList, responses={404: {"model": Problem}})
async def list_secrets(name: str, db: RequestDbDep, _: AnyUser) -> SecretList:
    """Secret names and when they changed; values are write-only."""
    return SecretList(items=await db.run(service.list_secrets, name=name))


async def _secret_body(request: Request, name: str, db: DbSession) -> SecretWrite:
    # Read the body ourselves so that the environment's upload limit applies while it streams.
    limit = await run_in_threadpool(service.max_upload_bytes, db, name=name)
    hard_cap = int(request.app.state.settings.max_request_mb * 1024 * 1024)
    raw = await read_limited_body(request, min(limit or hard_cap, hard_cap))
    try:
        return SecretWrite.model_validate(json.loads(raw))
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested too deeply
        raise InvalidInput("request body is not valid JSON") from exc
    except ValidationError as exc:
        raise InvalidInput(
            "request did not validate",
            errors=[
                {"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)
            ],
        ) from exc


@router.put(
    "/{name}/secrets/{key}",
    response_model=SecretRead,
    responses={**WRITE_RESPONSES, 413: {"model": Problem}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SecretWrite.model_json_schema()}},
        }
    },
)
def put_secret(
    request: Request,
    name: str,
    key: SecretKey,
    db: DbSession,
    _: AdminOnly,
    audit: Audit,
    __: EnvironmentRateLimit,
    body: Annotated[SecretWrite, Depends(_secret_body)],
) -> SecretRead:
    """Store a secret value, encrypted; the value is never returned."""
    keyring = request.app.state.keyring
    return service.set_secret(
        db, name=name, key=key, value=body.value, keyring=keyring, audit_context=audit
    )


@router.delete(
    "/{name}/secrets/{key}", status_code=204, response_class=Response, responses=WRITE_RESPONSES
)
def delete_secret(
    name: str, key: SecretKey, db: DbSession, _: AdminOnly, audit: Audit, __: EnvironmentRateLimit
) -> Response:
    """Remove a secret."""
    service.delete_secret(db, name=name, key=key, audit_context=audit)
    return Response(status_code=204)
