"""Integrations: their configuration, and the webhooks GitHub and GitLab send.

A webhook is authenticated by its signature (GitHub) or token (GitLab), checked over the raw
body before anything in it is read. Every request is recorded as a delivery, with the outcome a
person debugging a webhook needs; deployments change only for requests that pass the check.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import structlog
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.crypto import Keyring
from shipboard.core.errors import InvalidInput, NotFound, ShipboardError
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.db.engine import bind_identity
from shipboard.deployments import external
from shipboard.deployments import repository as deployments
from shipboard.integrations import mapping, repository
from shipboard.integrations.models import Integration, IntegrationDelivery, IntegrationDeployment
from shipboard.integrations.schemas import (
    DeliveryFilter,
    DeliveryPage,
    DeliveryRead,
    IntegrationList,
    IntegrationRead,
    IntegrationWrite,
)

log = structlog.get_logger(__name__)

PROVIDER = {"github": "GitHub", "gitlab": "GitLab"}
# Unsigned requests are recorded (so a wrong secret shows in the deliveries list) but only the
# newest of them are kept.
KEEP_REJECTED = 500
_HEADER_MAX = 255
FORM = "application/x-www-form-urlencoded"
# GitHub's form holds the one field `payload`; a few more are tolerated, thousands are not.
FORM_MAX_FIELDS = 10


# --- configuration --------------------------------------------------------------------------


def put_integration(
    session: Session,
    *,
    kind: str,
    data: IntegrationWrite,
    keyring: Keyring,
    audit_context: AuditContext,
) -> IntegrationRead:
    """Create or replace the integration of ``kind``; the secret is stored encrypted."""
    now = utcnow()
    integration = repository.get(session, kind)
    if integration is None:
        if data.secret is None:
            raise InvalidInput(
                "a new integration needs its secret",
                errors=[{"loc": ["body", "secret"], "msg": "required when creating"}],
            )
        integration = Integration(kind=kind, created_at=now, secret=keyring.encrypt(data.secret))
        created = True
    else:
        if data.secret is not None:
            integration.secret = keyring.encrypt(data.secret)
        created = False
    integration.env_map = dict(data.env_map)
    integration.deploy_workflow = data.deploy_workflow
    integration.workflow_environment = data.workflow_environment
    integration.updated_at = now
    integration.updated_by = audit_context.actor
    repository.add(session, integration)
    audit.record(
        session,
        context=audit_context,
        action="integration.create" if created else "integration.update",
        target_type="integration",
        target_id=kind,
        details={
            "env_map": integration.env_map,
            "deploy_workflow": integration.deploy_workflow,
            "workflow_environment": integration.workflow_environment,
            "secret_changed": data.secret is not None,
        },
    )
    return integration_read(integration)


def integration_specs(session: Session, *, keyring: Keyring) -> dict[str, IntegrationWrite]:
    """Every integration as the write shape that would create it, its secret decrypted (for
    configuration as code: diff and export; never returned as is)."""
    return {
        i.kind: IntegrationWrite.model_construct(
            secret=keyring.decrypt(i.secret),
            env_map=dict(i.env_map or {}),
            deploy_workflow=i.deploy_workflow,
            workflow_environment=i.workflow_environment,  # type: ignore[arg-type]
        )
        for i in repository.list_all(session)
    }


def integration_read(integration: Integration) -> IntegrationRead:
    return IntegrationRead(
        kind=integration.kind,
        webhook_path=f"/api/v1/integrations/{integration.kind}",
        secret_set=True,
        env_map=dict(integration.env_map or {}),
        deploy_workflow=integration.deploy_workflow,
        workflow_environment=integration.workflow_environment,
        created_at=integration.created_at,
        updated_at=integration.updated_at,
        updated_by=integration.updated_by,
    )


def list_integrations(session: Session) -> IntegrationList:
    """Every configured integration, without secrets."""
    return IntegrationList(items=[integration_read(i) for i in repository.list_all(session)])


def get_integration(session: Session, *, kind: str) -> IntegrationRead:
    """One integration, without its secret."""
    return integration_read(_require(session, kind))


def delete_integration(session: Session, *, kind: str, audit_context: AuditContext) -> None:
    """Remove an integration; its webhooks are refused from then on. Deployments it recorded and
    its deliveries stay."""
    repository.delete(session, _require(session, kind))
    audit.record(
        session,
        context=audit_context,
        action="integration.delete",
        target_type="integration",
        target_id=kind,
    )


def list_deliveries(
    session: Session,
    *,
    kind: str,
    filters: DeliveryFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeliveryPage:
    """Deliveries of one kind, newest first."""
    page = repository.delivery_page(
        session, kind=kind, filters=filters, cursor=cursor, limit=clamp_limit(limit)
    )
    return DeliveryPage(
        items=[DeliveryRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor
    )


def _require(session: Session, kind: str) -> Integration:
    integration = repository.get(session, kind)
    if integration is None:
        raise NotFound(f"no {kind} integration is configured")
    return integration


# --- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One webhook request as it arrived: the headers that matter and the raw body."""

    kind: str
    event: str | None
    delivery_id: str | None
    # X-Hub-Signature-256 (GitHub) or X-Gitlab-Token (GitLab).
    credential: str | None
    body: bytes
    source_ip: str | None = None
    request_id: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Received:
    """What became of a webhook, as answered to the provider and kept in the deliveries."""

    status_code: int
    outcome: str
    detail: str
    delivery: uuid.UUID
    deployment_id: uuid.UUID | None = None


def receive(
    session: Session, *, webhook: Webhook, keyring: Keyring, now: datetime | None = None
) -> Received:
    """Authenticate a webhook, then record or advance the deployment it reports.

    Gates never block it (it reports what already happened), a state never moves backwards, and
    a delivery already acted on is answered without acting again."""
    now = now or utcnow()
    # Row-level security sees the integration acting as the system: what it may change, the
    # signature decides just below (the check comes before any change).
    bind_identity(session, role="admin", user_id=f"{webhook.kind}-webhook")
    integration = repository.get(session, webhook.kind)
    refusal = _refusal(integration, webhook, keyring)
    if refusal is not None or integration is None:
        received = _delivered(session, webhook, now, 401, "rejected", refusal or "")
        repository.prune_rejected(session, webhook.kind, keep=KEEP_REJECTED)
        log.info("webhook_rejected", kind=webhook.kind, reason=refusal)
        return received
    first = (
        repository.first_applied(session, webhook.kind, webhook.delivery_id)
        if webhook.delivery_id
        else None
    )
    if first is not None:
        # The provider shows this answer: it names the deployment the first delivery recorded.
        return _delivered(
            session,
            webhook,
            now,
            200,
            "duplicate",
            f"delivery {webhook.delivery_id} was received before; nothing changed",
            external_id=first.external_id,
            deployment_id=first.deployment_id,
        )
    meaning = _meaning(session, integration, webhook)
    if not isinstance(meaning, mapping.DeploymentEvent):
        status_code, outcome, detail = meaning
        return _delivered(session, webhook, now, status_code, outcome, detail)
    context = AuditContext(
        actor=f"{webhook.kind}:{meaning.triggered_by}",
        actor_role=None,
        source_ip=webhook.source_ip,
        request_id=webhook.request_id,
    )
    try:
        # A savepoint: a change that fails half-way leaves deployments as they were, and the
        # delivery is still recorded with the reason.
        with session.begin_nested():
            outcome, detail, deployment_id = _apply(
                session, webhook=webhook, event=meaning, now=now, ctx=context
            )
    except ShipboardError as exc:
        log.warning("webhook_not_applied", kind=webhook.kind, error=exc.detail)
        status_code = exc.status_code if exc.status_code < 500 else 422
        return _delivered(
            session,
            webhook,
            now,
            status_code,
            "invalid",
            exc.detail,
            external_id=meaning.external_id,
        )
    return _delivered(
        session,
        webhook,
        now,
        200,
        outcome,
        detail,
        external_id=meaning.external_id,
        deployment_id=deployment_id,
    )


def _refusal(integration: Integration | None, webhook: Webhook, keyring: Keyring) -> str | None:
    """Why the request is not authentic, or None when it is."""
    if integration is None:
        return (
            f"no {webhook.kind} integration is configured; add one with "
            f"`shipboard integrations add {webhook.kind} --secret-stdin`"
        )
    secret = keyring.decrypt(integration.secret)
    if webhook.kind == "github":
        header = "X-Hub-Signature-256"
        authentic = mapping.verify_github_signature(secret, webhook.body, webhook.credential)
        mismatch = f"{header} does not match the body signed with the integration's secret"
    else:
        header = "X-Gitlab-Token"
        authentic = mapping.verify_gitlab_token(secret, webhook.credential)
        mismatch = f"{header} does not match the integration's token"
    if authentic:
        return None
    return f"{header} header missing" if webhook.credential is None else mismatch


def _meaning(
    session: Session, integration: Integration, webhook: Webhook
) -> mapping.DeploymentEvent | tuple[int, str, str]:
    """The deployment event of an authentic request, or (status, outcome, why) when there is
    none to apply."""
    payload = _payload(webhook)
    if isinstance(payload, str):
        return 400, "invalid", payload
    settings = mapping.Settings(
        environments=repository.environment_names(session),
        env_map={str(k): str(v) for k, v in (integration.env_map or {}).items()},
        deploy_workflow=integration.deploy_workflow,
        workflow_environment=integration.workflow_environment,
    )
    read = mapping.github_event if webhook.kind == "github" else mapping.gitlab_event
    try:
        meaning = read(webhook.event, payload, settings)
    except InvalidInput as exc:
        return 422, "invalid", exc.detail
    if isinstance(meaning, mapping.Ping):
        return 200, "ping", meaning.reason
    if isinstance(meaning, mapping.Ignore):
        return 202, "ignored", meaning.reason
    return meaning


def _payload(webhook: Webhook) -> dict[str, Any] | str:
    """The body's JSON object, or why there is none."""
    body = webhook.body
    if _media_type(webhook.content_type) == FORM:
        # GitHub's default content type: the JSON is the form's `payload` field. The signature
        # was checked over the encoded bytes, as GitHub computes it.
        form = _form_payload(body)
        if form is None:
            return "form body has no payload field (GitHub's payload=<JSON>)"
        body = form
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
        return "request body is not valid JSON"
    if not isinstance(payload, dict):
        return "request body is not a JSON object"
    return payload


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _form_payload(body: bytes) -> bytes | None:
    """The ``payload`` field of a URL-encoded form, or None when there is none (or the body is
    not a form)."""
    try:
        fields = parse_qs(body.decode("ascii"), strict_parsing=True, max_num_fields=FORM_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("payload")
    return values[0].encode() if values and len(values) == 1 else None


def _apply(
    session: Session,
    *,
    webhook: Webhook,
    event: mapping.DeploymentEvent,
    now: datetime,
    ctx: AuditContext,
) -> tuple[str, str, uuid.UUID]:
    provider = PROVIDER[webhook.kind]
    repository.lock_external(session, webhook.kind, event.external_id)
    link = repository.get_link(session, webhook.kind, event.external_id)
    if link is None and event.legacy_id is not None:
        link = repository.take_over_legacy_link(
            session, webhook.kind, event.legacy_id, event.external_id, event.commit_sha
        )
    # Their clocks, not ours: a redelivery hours later still records when it happened. Never in
    # our future, though, and never before the deployment began.
    created_at = min(event.created_at or event.happened_at or now, now)
    what = f"{provider} deployment {event.external_id} ({event.their_environment})"
    if link is None:
        deployment = external.record(
            session,
            environment=event.environment,
            version=event.version,
            commit_sha=event.commit_sha,
            # Namespaced: a local user name never contains ":", so a local account named like
            # the GitHub login is not this deployment's triggerer (and may not report on it).
            triggered_by=f"{webhook.kind}:{event.triggered_by}",
            logs_url=event.logs_url,
            commit_timestamp=event.commit_timestamp,
            created_at=created_at,
            source=what,
            audit_context=ctx,
        )
        link = IntegrationDeployment(
            kind=webhook.kind,
            external_id=event.external_id,
            deployment_id=deployment.id,
            external_state=event.their_state,
            updated_at=now,
        )
        repository.add_link(session, link)
        created = True
    else:
        found = deployments.get_for_update(session, link.deployment_id)
        if found is None:
            raise NotFound(f"deployment {link.deployment_id} no longer exists")
        deployment = found
        created = False
    assert deployment.created_at is not None
    at = max(min(event.happened_at or now, now), deployment.created_at)
    before = deployment.status
    steps = mapping.steps(before, event.target)
    external.advance(
        session,
        deployment,
        steps,
        actor=webhook.kind,
        at=at,
        error_message=event.error_message,
        logs_url=event.logs_url,
    )
    if steps:
        link.external_state = event.their_state
        link.updated_at = now
        session.flush()
    if created:
        detail = f"recorded {what} as {deployment.status} in {deployment.environment}"
        return "recorded", detail, deployment.id
    if steps:
        detail = f"{what}: {before} -> {deployment.status} ({provider} {event.their_state})"
        audit.record(
            session,
            context=ctx,
            action="deployment.status_external",
            target_type="deployment",
            target_id=str(deployment.id),
            details={"status": deployment.status, "their_state": event.their_state},
        )
        return "updated", detail, deployment.id
    if event.target is None:
        why = f"{provider} state {event.their_state!r} changes nothing"
    else:
        why = (
            f"already {before}; {provider} {event.their_state!r} would not move it forward "
            "(events arrive out of order; a state never moves backwards)"
        )
    return "unchanged", f"{what}: {why}", deployment.id


def _delivered(
    session: Session,
    webhook: Webhook,
    now: datetime,
    status_code: int,
    outcome: str,
    detail: str,
    *,
    external_id: str | None = None,
    deployment_id: uuid.UUID | None = None,
) -> Received:
    delivery = IntegrationDelivery(
        id=uuid.uuid4(),
        kind=webhook.kind,
        event=_short(webhook.event),
        delivery_id=_short(webhook.delivery_id),
        received_at=now,
        status_code=status_code,
        outcome=outcome,
        detail=detail,
        external_id=external_id,
        deployment_id=deployment_id,
    )
    repository.add_delivery(session, delivery)
    return Received(
        status_code=status_code,
        outcome=outcome,
        detail=detail,
        delivery=delivery.id,
        deployment_id=deployment_id,
    )


def _short(header: str | None) -> str | None:
    # Headers of unauthenticated requests are whatever the sender wrote: keep them short.
    return header[:_HEADER_MAX] if header else None
