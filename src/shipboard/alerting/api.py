"""Routes of alert rules, alerts and silences."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from shipboard.alerting import alerts, external, service, silences
from shipboard.alerting.schemas import (
    AlertmanagerWebhook,
    AlertPage,
    AlertRead,
    AlertRuleCreate,
    AlertRulePage,
    AlertRuleRead,
    AlertRuleUpdate,
    ExternalAlertPage,
    Received,
    SilenceCreate,
    SilencePage,
    SilenceRead,
)
from shipboard.auth.deps import AdminOnly, AnyUser, Audit, DeployerOrAdmin, ServiceOrAdmin
from shipboard.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shipboard.core.problems import Problem
from shipboard.core.time import utcnow
from shipboard.environments import repository as environments
from shipboard.http.db import DbSession, RequestDbDep

router = APIRouter(
    prefix="/api/v1",
    tags=["alerting"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
CHANGE: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.get("/alert-rules", response_model=AlertRulePage)
async def list_rules(db: RequestDbDep, _: AnyUser) -> AlertRulePage:
    """Alert rules with their health (`error` when the last evaluation failed)."""
    return AlertRulePage(items=await db.run(service.list_rules))


@router.post("/alert-rules", status_code=201, response_model=AlertRuleRead, responses=CHANGE)
def create_rule(
    data: AlertRuleCreate, request: Request, db: DbSession, _: AdminOnly, audit: Audit
) -> AlertRuleRead:
    """Create a threshold, anomaly or promql rule (promql: needs SHIPBOARD_PROMETHEUS_URL)."""
    return service.create_rule(
        db,
        data=data,
        audit_context=audit,
        store_configured=bool(request.app.state.settings.prometheus_url),
    )


@router.get("/alert-rules/{rule_id}", response_model=AlertRuleRead, responses=CHANGE)
async def get_rule(rule_id: uuid.UUID, db: RequestDbDep, _: AnyUser) -> AlertRuleRead:
    """One rule."""
    return await db.run(service.get_rule, rule_id=rule_id)


@router.patch("/alert-rules/{rule_id}", response_model=AlertRuleRead, responses=CHANGE)
def update_rule(
    rule_id: uuid.UUID, data: AlertRuleUpdate, db: DbSession, _: AdminOnly, audit: Audit
) -> AlertRuleRead:
    """Disable a rule (its firing alert is resolved and its channels told) or enable it."""
    return service.set_rule_enabled(db, rule_id=rule_id, enabled=data.enabled, audit_context=audit)


@router.delete("/alert-rules/{rule_id}", status_code=204, response_class=Response, responses=CHANGE)
def delete_rule(rule_id: uuid.UUID, db: DbSession, _: AdminOnly, audit: Audit) -> Response:
    """Delete a rule and its alerts; a firing one is resolved and its channels told first."""
    service.delete_rule(db, rule_id=rule_id, audit_context=audit)
    return Response(status_code=204)


@router.get("/alerts", response_model=AlertPage, responses={422: {"model": Problem}})
async def list_alerts(
    db: RequestDbDep,
    _: AnyUser,
    state: Literal["pending", "firing", "resolved"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AlertPage:
    """Alerts with their transitions, newest change first; filter by state."""
    return await db.run(alerts.list_alerts, state=state, cursor=cursor, limit=limit)


@router.get("/alerts/{alert_id}", response_model=AlertRead, responses={404: {"model": Problem}})
async def get_alert(alert_id: uuid.UUID, db: RequestDbDep, _: AnyUser) -> AlertRead:
    """One alert with its transitions."""
    return await db.run(alerts.get_alert, alert_id=alert_id)


@router.get("/silences", response_model=SilencePage)
async def list_silences(db: RequestDbDep, _: AnyUser) -> SilencePage:
    """Silences, active or not."""
    return SilencePage(items=await db.run(silences.list_silences))


@router.post("/silences", status_code=201, response_model=SilenceRead, responses=CHANGE)
def create_silence(
    data: SilenceCreate, db: DbSession, caller: DeployerOrAdmin, audit: Audit
) -> SilenceRead:
    """Mute notifications of matching alerts for a while (they still change state)."""
    return silences.create_silence(db, data=data, creator=caller.name, audit_context=audit)


@router.delete("/silences/{silence_id}", response_model=SilenceRead, responses=CHANGE)
def expire_silence(
    silence_id: uuid.UUID, db: DbSession, _: DeployerOrAdmin, audit: Audit
) -> SilenceRead:
    """Expire a silence now."""
    return silences.expire_silence(db, silence_id=silence_id, audit_context=audit)


@router.post(
    "/integrations/alertmanager",
    response_model=Received,
    responses={422: {"model": Problem}},
)
def alertmanager_webhook(
    webhook: AlertmanagerWebhook, request: Request, db: DbSession, _: ServiceOrAdmin
) -> Received:
    """Alertmanager's webhook (v4). Point a `webhook_configs` receiver here with
    `http_config.authorization.credentials` set to a service token; its alerts show beside
    Shipboard's own, and one firing in an environment during a deployment's watch fails it."""
    labels = request.app.state.settings.alertmanager_environment_labels.split(",")
    count = external.receive(
        db,
        webhook=webhook,
        known_environments=set(environments.names(db)),
        label_names=[name.strip() for name in labels if name.strip()],
        now=utcnow(),
    )
    return Received(received=count)


@router.get("/external-alerts", response_model=ExternalAlertPage)
async def list_external_alerts(
    db: RequestDbDep,
    _: AnyUser,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
) -> ExternalAlertPage:
    """Alerts received from Alertmanager, firing first (at most 500)."""
    return await db.run(external.list_external, environment=environment, status=status)
