"""The schedule's table: when each scheduled task last ran, when it is next due, who runs it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.db.base import Base
from shipboard.db.types import UTCDateTime


class JobSchedule(Base):
    """One row per scheduled task (``name`` as its ``tasks.py`` declares it).

    ``next_due_at`` moves forward in the same transaction that claims a run, so a run that was
    missed several times while no node ran runs once; ``claimed_until`` keeps two runs of one
    task from overlapping, whichever node starts the second."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(sa.Text)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
