"""The job runtime's tables: the schedule (when each scheduled task last ran, when it is next
due, who runs it) and the queue of jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.db.base import Base, check_in
from shipboard.db.types import GUID, JSONType, UTCDateTime

JOB_STATUSES = ("queued", "running", "done", "failed")


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


class Job(Base):
    """One piece of queued work (``kind`` names the handler a ``tasks.py`` declares). Enqueued
    in the transaction of what asked for it, so it exists only if that committed; claimed by
    one worker at a time under a lease the worker renews; a lapsed lease puts it back."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(check_in("status", JOB_STATUSES), name="status"),
        sa.Index("ix_jobs_status_run_after", "status", "run_after"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, default="queued")
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=3)
    lease_owner: Mapped[str | None] = mapped_column(sa.Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
