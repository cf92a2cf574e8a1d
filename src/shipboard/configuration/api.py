"""`/api/v1/config`: the whole configuration as one document, its diff, and apply (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shipboard.auth.deps import AdminOnly, Audit
from shipboard.configuration import service
from shipboard.configuration.schemas import (
    ApplyRequest,
    ConfigApplied,
    ConfigDiff,
    DiffRequest,
    LiveConfig,
)
from shipboard.core.problems import Problem
from shipboard.http.db import DbSession

router = APIRouter(
    prefix="/api/v1/config",
    tags=["configuration"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
CHANGE: dict[int | str, dict[str, Any]] = {409: {"model": Problem}, 422: {"model": Problem}}


@router.get("", response_model=LiveConfig)
def get_config(request: Request, db: DbSession, _: AdminOnly) -> LiveConfig:
    """The live configuration as a document (credentials as `${VAR}` references) and its
    revision, for `apply --expect-revision`."""
    return service.export(db, keyring=request.app.state.keyring)


@router.post("/diff", response_model=ConfigDiff, responses=CHANGE)
def diff_config(data: DiffRequest, request: Request, db: DbSession, _: AdminOnly) -> ConfigDiff:
    """What applying a (resolved) document would change, object by object; nothing is written."""
    return service.diff(db, data=data.document, keyring=request.app.state.keyring, prune=data.prune)


@router.post("/apply", response_model=ConfigApplied, responses=CHANGE)
def apply_config(
    data: ApplyRequest, request: Request, db: DbSession, _: AdminOnly, audit: Audit
) -> ConfigApplied:
    """Apply a (resolved) document in one transaction, all or nothing, audited as one event."""
    return service.apply(
        db,
        data=data.document,
        keyring=request.app.state.keyring,
        audit_context=audit,
        prune=data.prune,
        dry_run=data.dry_run,
        expect_revision=data.expect_revision,
        outbound=request.app.state.settings.outbound_policy,
        store_configured=bool(request.app.state.settings.prometheus_url),
    )
