"""Routes of notification channels and their deliveries."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from shipboard.auth.deps import AdminOnly, AnyUser, Audit
from shipboard.core.problems import Problem
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.notifications import service
from shipboard.notifications.schemas import (
    ChannelCreate,
    ChannelPage,
    ChannelRead,
    DeliveryPage,
    DeliveryRead,
)

# Tagged "alerting" as before the routes had a module of their own: OpenAPI is unchanged.
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


@router.get("/notification-channels", response_model=ChannelPage)
async def list_channels(db: RequestDbDep, _: AnyUser) -> ChannelPage:
    """Channels; credentials show as ***."""
    return ChannelPage(items=await db.run(service.list_channels))


@router.post(
    "/notification-channels", status_code=201, response_model=ChannelRead, responses=CHANGE
)
def create_channel(
    data: ChannelCreate, request: Request, db: DbSession, _: AdminOnly, audit: Audit
) -> ChannelRead:
    """Create a webhook, slack, email or alertmanager channel."""
    return service.create_channel(
        db,
        data=data,
        keyring=request.app.state.keyring,
        audit_context=audit,
        outbound=request.app.state.settings.outbound_policy,
    )


@router.delete(
    "/notification-channels/{channel_id}",
    status_code=204,
    response_class=Response,
    responses=CHANGE,
)
def delete_channel(channel_id: uuid.UUID, db: DbSession, _: AdminOnly, audit: Audit) -> Response:
    """Delete a channel."""
    service.delete_channel(db, channel_id=channel_id, audit_context=audit)
    return Response(status_code=204)


@router.get(
    "/notification-channels/{channel_id}/deliveries", response_model=DeliveryPage, responses=CHANGE
)
async def list_deliveries(channel_id: uuid.UUID, db: RequestDbDep, _: AdminOnly) -> DeliveryPage:
    """Every delivery of the channel with every attempt."""
    return await db.run(service.list_deliveries, channel_id=channel_id)


@router.post(
    "/notification-channels/{channel_id}/test",
    status_code=202,
    response_model=DeliveryRead,
    responses=CHANGE,
)
def send_test_message(
    channel_id: uuid.UUID, db: DbSession, _: AdminOnly, audit: Audit
) -> DeliveryRead:
    """Queue a test message through the channel (sent within a second by the scheduler)."""
    delivery = service.enqueue_test(db, channel_id=channel_id, audit_context=audit)
    return service.delivery_read(delivery)
