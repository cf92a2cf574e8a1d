"""A claimed deployment as the worker runs it, how a run stops early, and its log lines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.redaction import redact_text
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import repository as deployments_repo
from shipboard.deployments.models import DeploymentConfig
from shipboard.environments.pipeline import Pipeline

MICROSECOND = timedelta(microseconds=1)


class StageFailed(Exception):
    def __init__(self, message: str, *, verification: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.verification = verification


class Interrupted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Job:
    deployment_id: uuid.UUID
    environment: str
    version: str
    commit_sha: str
    pipeline: Pipeline
    secrets: dict[str, str]
    last_log: datetime = field(default_factory=utcnow)


def load(session: Session, job: Job) -> DeploymentConfig:
    """The job's deployment, locked for update."""
    deployment = deployments_repo.get_for_update(session, job.deployment_id)
    assert deployment is not None
    return deployment


def log(engine: Engine, job: Job, level: str, message: str, source: str) -> None:
    """One line in the job's log, in a transaction of its own."""
    with system_transaction(engine) as session:
        append(session, job, [(level, message, source)])


def append(session: Session, job: Job, lines: list[tuple[str, str, str]]) -> None:
    """Lines ``(level, message, source)`` in the job's log, redacted, in the order given."""
    # Strictly increasing times keep lines in the order they were produced.
    rows = []
    for level, message, source in lines:
        job.last_log = max(utcnow(), job.last_log + MICROSECOND)
        rows.append(
            {
                "id": uuid.uuid4(),
                "deployment_id": job.deployment_id,
                "level": level,
                # Every line a viewer reads: step output too may print a URL's password.
                "message": redact_text(message),
                "timestamp": job.last_log,
                "source": source,
                "metadata_": None,
            }
        )
    deployments_repo.add_logs(session, rows)
