from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from shipboard.auth.deps import AdminOnly, Audit, check_auth_failures, note_auth_failure
from shipboard.core.bodylimit import read_limited_body
from shipboard.core.problems import Problem, problem_response
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.integrations import service
from shipboard.integrations.schemas import (
    DeliveryFilter,
    DeliveryPage,
    IntegrationKind,
    IntegrationList,
    IntegrationRead,
    IntegrationWrite,
    WebhookAnswer,
)

router = APIRouter(prefix="/api/v1/integrations", tags=["integrations"])
ADMIN: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 403: {"model": Problem}}
# GitHub caps webhook payloads at 25 MB; a deployment event is a few kilobytes.
WEBHOOK_MAX_BYTES = 25 * 1024 * 1024
# Their body is their authentication (a signature over the raw bytes, or GitLab's token):
# the edge does not ask them for a bearer token before reading it (core/bodylimit.py).
WEBHOOK_PATHS = frozenset({"/api/v1/integrations/github", "/api/v1/integrations/gitlab"})
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": WebhookAnswer, "description": "understood but ignored (with the reason)"},
    400: {"model": Problem, "description": "the body is not JSON (nor a form with payload=JSON)"},
    401: {"model": Problem, "description": "missing or wrong signature/token: nothing stored"},
    413: {"model": Problem},
    422: {"model": Problem, "description": "a deployment event without what it needs"},
    429: {"model": Problem, "description": "too many wrong signatures or tokens from here"},
}
WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
# GitHub's default content type: `payload=<the same JSON, URL-encoded>`.
GITHUB_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"payload": {"type": "string"}}}
            },
        },
    }
}


async def _raw_body(request: Request) -> bytes:
    # The signature covers the exact bytes sent: read them ourselves, bounded, before any parsing.
    hard_cap = int(request.app.state.settings.max_request_mb * 1024 * 1024)
    return await read_limited_body(request, min(WEBHOOK_MAX_BYTES, hard_cap))


RawBody = Annotated[bytes, Depends(_raw_body)]


def _receive(request: Request, db: Session, webhook: service.Webhook) -> Response:
    # A wrong signature or token spends the per-address budget a wrong API token does:
    # otherwise these two routes would be an unthrottled oracle for the integration's secret.
    check_auth_failures(request)
    received = service.receive(db, webhook=webhook, keyring=request.app.state.keyring)
    if received.status_code == 401:
        note_auth_failure(request)
    return _answer(received)


def _answer(received: service.Received) -> Response:
    if received.status_code >= 400:
        # Answered, not raised: raising would roll back the delivery record with the request.
        return problem_response(received.status_code, received.detail)
    body = WebhookAnswer(
        outcome=received.outcome,
        detail=received.detail,
        delivery=received.delivery,
        deployment_id=received.deployment_id,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=received.status_code)


@router.post(
    "/github", response_model=WebhookAnswer, responses=WEBHOOK_RESPONSES, openapi_extra=GITHUB_BODY
)
def github_webhook(
    request: Request,
    db: DbSession,
    body: RawBody,
    x_github_event: Annotated[str | None, Header()] = None,
    x_github_delivery: Annotated[str | None, Header()] = None,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> Response:
    """GitHub webhook (deployment, deployment_status, workflow_run), signed with the secret."""
    webhook = service.Webhook(
        kind="github",
        event=x_github_event,
        delivery_id=x_github_delivery,
        credential=x_hub_signature_256,
        body=body,
        source_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
        content_type=request.headers.get("content-type"),
    )
    return _receive(request, db, webhook)


@router.post(
    "/gitlab", response_model=WebhookAnswer, responses=WEBHOOK_RESPONSES, openapi_extra=WEBHOOK_BODY
)
def gitlab_webhook(
    request: Request,
    db: DbSession,
    body: RawBody,
    x_gitlab_event: Annotated[str | None, Header()] = None,
    x_gitlab_event_uuid: Annotated[str | None, Header()] = None,
    x_gitlab_token: Annotated[str | None, Header()] = None,
) -> Response:
    """GitLab Deployment Hook, authenticated by the integration's token."""
    webhook = service.Webhook(
        kind="gitlab",
        event=x_gitlab_event,
        delivery_id=x_gitlab_event_uuid,
        credential=x_gitlab_token,
        body=body,
        source_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )
    return _receive(request, db, webhook)


@router.get("", response_model=IntegrationList, responses=ADMIN)
async def list_integrations(db: RequestDbDep, _: AdminOnly) -> IntegrationList:
    """Configured integrations, without their secrets."""
    return await db.run(service.list_integrations)


@router.get("/{kind}", response_model=IntegrationRead, responses={**ADMIN, 404: {"model": Problem}})
async def get_integration(kind: IntegrationKind, db: RequestDbDep, _: AdminOnly) -> IntegrationRead:
    """One integration, without its secret."""
    return await db.run(service.get_integration, kind=kind)


@router.put("/{kind}", response_model=IntegrationRead, responses={**ADMIN, 422: {"model": Problem}})
def put_integration(
    kind: IntegrationKind,
    data: IntegrationWrite,
    request: Request,
    db: DbSession,
    _: AdminOnly,
    audit: Audit,
) -> IntegrationRead:
    """Create or replace an integration: secret (stored encrypted), env map, deploy workflow."""
    return service.put_integration(
        db, kind=kind, data=data, keyring=request.app.state.keyring, audit_context=audit
    )


@router.delete(
    "/{kind}",
    status_code=204,
    response_class=Response,
    responses={**ADMIN, 404: {"model": Problem}},
)
def delete_integration(
    kind: IntegrationKind, db: DbSession, _: AdminOnly, audit: Audit
) -> Response:
    """Remove an integration: its webhooks are refused from then on."""
    service.delete_integration(db, kind=kind, audit_context=audit)
    return Response(status_code=204)


@router.get(
    "/{kind}/deliveries", response_model=DeliveryPage, responses={**ADMIN, 422: {"model": Problem}}
)
async def list_deliveries(
    kind: IntegrationKind,
    db: RequestDbDep,
    _: AdminOnly,
    filters: Annotated[DeliveryFilter, Query()],
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """Every webhook received, newest first, with what Shipboard made of it."""
    return await db.run(
        service.list_deliveries, kind=kind, filters=filters, cursor=cursor, limit=limit
    )
