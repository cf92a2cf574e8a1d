"""The reports' database side: gather the facts, hand them to the pure modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.integrations.mapping import CANCELLED_STATES
from shipboard.integrations.models import IntegrationDeployment
from shipboard.reports import dora


def dora_facts(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> list[dora.DeploymentFact]:
    """Deployments that completed in the period (and nothing else: the pure module counts
    only those), with the run's commit time and whether a user cancelled them."""
    rows = session.execute(
        sa.select(
            DeploymentConfig.id,
            DeploymentConfig.status,
            DeploymentConfig.created_at,
            DeploymentConfig.completed_at,
            DeploymentConfig.error_message,
            DeploymentRun.commit_timestamp,
            DeploymentRun.cancel_requested_by,
            DeploymentRun.outcome,
            IntegrationDeployment.external_state,
        )
        .outerjoin(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        # A deployment GitHub or GitLab reported as cancelled is as cancelled as one of ours.
        .outerjoin(
            IntegrationDeployment, IntegrationDeployment.deployment_id == DeploymentConfig.id
        )
        .where(
            DeploymentConfig.environment == environment,
            DeploymentConfig.completed_at >= since,
            DeploymentConfig.completed_at < until,
        )
    ).all()
    return [
        dora.DeploymentFact(
            id=str(row.id),
            # A deployment that failed and was then rolled back is a failure, not a deployment
            # that reached production.
            status="failed"
            if row.status == "rolled_back" and row.outcome == "failed"
            else row.status,
            created_at=row.created_at or row.completed_at,
            completed_at=row.completed_at,
            commit_timestamp=row.commit_timestamp,
            cancelled=row.cancel_requested_by is not None
            or (
                row.status == "failed"
                and (
                    (row.error_message or "").startswith("cancelled by ")
                    or row.external_state in CANCELLED_STATES
                )
            ),
        )
        for row in rows
    ]


def dora_report(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> dict[str, Any]:
    facts = dora_facts(session, environment=environment, since=since, until=until)
    return dora.compute_dora(facts, environment=environment, since=since, until=until)
