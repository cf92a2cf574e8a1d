from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import JSONType, UTCDateTime


class Environment(Base):
    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    domain: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # As the redaction shows it; the credentials it hides are in `config_secrets`
    # ({JSON pointer: Fernet token}, core/sealing.py), read through `service.plaintext_config`.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    config_secrets: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    # {key: {"value": <Fernet token>, "updated_at": iso}} -- never plaintext.
    secrets: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    features: Mapped[dict[str, bool] | None] = mapped_column(JSONType, default=dict)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)


class StorageQuotaAlert(Base):
    """An environment whose storage usage is over 90 % of ``limits.storage_quota_gb``, since
    ``alerted_at`` (when its channels were told); no row while it is below. Kept by
    ``ops/quotas.py``: each crossing is one atomic insert or delete of this row."""

    __tablename__ = "storage_quota_alerts"

    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name", ondelete="CASCADE"), primary_key=True
    )
    alerted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
