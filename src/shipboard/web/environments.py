"""Environment pages: domain, config (redacted as the API redacts it), features, limits, secret
names, freeze windows and pipeline; admins toggle features and set secret values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfoNotFoundError

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError

from shipboard.auth.deps import audit_context_of
from shipboard.core.errors import PayloadTooLarge
from shipboard.core.time import utcnow
from shipboard.deployments import gates
from shipboard.environments import service as environments
from shipboard.environments.deps import environments_shown, spend_budget
from shipboard.environments.pipeline import Pipeline
from shipboard.environments.schemas import EnvironmentRead
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.web.deps import AdminForm, Viewer
from shipboard.web.helpers import back
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)

FLAG = r"^[a-z][a-z0-9_]{0,63}$"
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# The flags the deployment gates read, so that the page can offer them before anyone sets them.
KNOWN_FEATURES = {
    "deploy_freeze": "Refuse every deployment: a manual freeze.",
    "require_staging_success": "Accept only a version and commit that succeeded on staging.",
    "block_on_critical_findings": "Refuse deployments while critical findings are open.",
    "block_on_overdue_high": "Refuse deployments while high findings are past their SLA.",
}
DONE = {
    "feature-on": "Feature turned on.",
    "feature-off": "Feature turned off.",
    "secret-set": "Secret value stored. It is write-only: nobody can read it back here.",
}


@dataclass(frozen=True)
class Feature:
    name: str
    enabled: bool
    explicit: bool
    description: str


def features_of(env: EnvironmentRead) -> list[Feature]:
    facts = gates.GateFacts(
        environment=env.name,
        version="",
        commit_sha="",
        features=env.features,
        freeze_windows=[],
        now=utcnow(),
        staging_success=False,
        unresolved_critical=0,
    )
    names = sorted({*KNOWN_FEATURES, *env.features})
    return [
        Feature(
            name=name,
            enabled=gates.feature(facts, name),
            explicit=name in env.features,
            description=KNOWN_FEATURES.get(name, ""),
        )
        for name in names
    ]


def freeze_windows(config: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    windows = config.get("freeze_windows")
    if not isinstance(windows, list):
        return []
    out = []
    for window in windows:
        if not isinstance(window, dict):
            continue
        try:
            active = gates.active_freeze([window], now)
        # A window stored before validation existed should not take the page down.
        except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
            active = None
        out.append({**window, "active": active})
    return out


def pipeline_of(config: dict[str, Any]) -> tuple[Pipeline | None, str | None]:
    """The parsed pipeline, or its raw JSON when it does not parse (shown as it is)."""
    raw = config.get("pipeline")
    if raw is None:
        return None, None
    try:
        return Pipeline.model_validate(raw), None
    except ValidationError:
        return None, json.dumps(raw, indent=2, sort_keys=True, default=str)


def config_rows(config: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(key, shown value, whether it is a block of JSON) for the config table."""
    rows = []
    for key, value in sorted(config.items()):
        if key in ("freeze_windows", "pipeline"):
            continue
        if isinstance(value, dict | list):
            rows.append((key, json.dumps(value, indent=2, sort_keys=True, default=str), True))
        else:
            rows.append((key, "—" if value is None else str(value), False))
    return rows


@router.get("/environments")
async def environments_page(request: Request, db: RequestDbDep, principal: Viewer) -> Response:
    rows = await db.run(environments.ordered_environments)
    items = await environments_shown(request, rows, reveal_credentials=principal.role == "admin")
    now = utcnow()
    return render(
        request,
        "environments.html",
        principal=principal,
        items=[
            {
                "env": env,
                "features": [f for f in features_of(env) if f.enabled],
                "frozen": any(w["active"] for w in freeze_windows(env.config, now)),
                "has_pipeline": env.config.get("pipeline") is not None,
            }
            for env in items
        ],
    )


@router.get("/environments/{name}")
async def environment_page(
    request: Request, name: str, db: RequestDbDep, principal: Viewer, done: str | None = None
) -> Response:
    row = await db.run(environments.require_environment, name)
    [env] = await environments_shown(request, [row], reveal_credentials=principal.role == "admin")
    pipeline, pipeline_raw = pipeline_of(env.config)
    return render(
        request,
        "environment.html",
        principal=principal,
        env=env,
        notice=DONE.get(done or ""),
        is_admin=principal.role == "admin",
        features=features_of(env),
        config=config_rows(env.config),
        secrets=await db.run(environments.list_secrets, name=name),
        windows=freeze_windows(env.config, utcnow()),
        pipeline=pipeline,
        pipeline_raw=pipeline_raw,
        upload_limit=await db.run(environments.max_upload_bytes, name=name),
    )


@router.post("/environments/{name}/features/{flag}")
def toggle_feature(
    request: Request,
    name: str,
    flag: Annotated[str, Path(pattern=FLAG)],
    db: DbSession,
    principal: AdminForm,
    enabled: Annotated[Literal["true", "false"], Form()],
) -> Response:
    # The same per-environment write budget as PUT /api/v1/environments/{name}/features/{flag}.
    spend_budget(request, db, principal, name)
    environments.set_feature(
        db,
        name=name,
        flag=flag,
        enabled=enabled == "true",
        audit_context=audit_context_of(request, principal),
        keyring=request.app.state.keyring,
    )
    return back(
        f"/environments/{quote(name)}", "feature-on" if enabled == "true" else "feature-off"
    )


@router.post("/environments/{name}/secrets")
def set_secret(
    request: Request,
    name: str,
    db: DbSession,
    principal: AdminForm,
    key: Annotated[str, Form(pattern=KEY_PATTERN)],
    value: Annotated[str, Form(min_length=1, max_length=65536)],
) -> Response:
    spend_budget(request, db, principal, name)
    limit = environments.max_upload_bytes(db, name=name)
    if limit and len(value.encode()) > limit:
        raise PayloadTooLarge(f"the value is larger than {name}'s max_file_size_mb")
    environments.set_secret(
        db,
        name=name,
        key=key,
        value=value,
        keyring=request.app.state.keyring,
        audit_context=audit_context_of(request, principal),
    )
    return back(f"/environments/{quote(name)}", "secret-set")
