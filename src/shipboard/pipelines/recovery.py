"""Automatic rollback after a failed verification, a failed watch or a lost worker."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.errors import ShipboardError
from shipboard.db.engine import system_transaction
from shipboard.deployments import repository as deployments_repo
from shipboard.deployments import service as deployments
from shipboard.deployments.models import DeploymentConfig
from shipboard.environments.validation import stored_mapping

log = structlog.get_logger("shipboard.worker")


def auto_rollback_by_id(engine: Engine, deployment_id: uuid.UUID, *, reason: str) -> None:
    """``auto_rollback`` in a transaction of its own."""
    with system_transaction(engine) as session:
        deployment = deployments_repo.get(session, deployment_id)
        if deployment is not None:
            auto_rollback(session, deployment, reason=reason)


def auto_rollback(session: Session, deployment: DeploymentConfig, *, reason: str) -> None:
    """Roll ``deployment`` back if its environment has ``auto_rollback`` on."""
    environment = deployments_repo.lock_environment(session, deployment.environment)
    if environment is None or not stored_mapping(environment.features).get("auto_rollback"):
        return
    if deployment.rollback_from is not None:
        # Rolling back a failed rollback would loop; the failure is reported loudly instead.
        return
    try:
        deployments.rollback(
            session,
            deployment_id=deployment.id,
            caller=None,
            audit_context=None,
        )
    except ShipboardError as exc:  # e.g. nothing to roll back to: say so, go on
        deployments.log_line(
            session, deployment.id, "error", f"automatic rollback not possible: {exc}"
        )
        return
    log.warning("auto_rollback", deployment_id=str(deployment.id), reason=reason)
