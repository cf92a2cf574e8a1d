from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shipboard.core.types import Timestamp


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    occurred_at: datetime
    actor: str
    actor_role: str | None = None
    action: str
    target_type: str | None = None
    target_id: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None


class AuditEventPage(BaseModel):
    items: list[AuditEventRead]
    next_cursor: str | None = None


class AuditFilter(BaseModel):
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
