"""The deployment queue: claim the head of an environment's queue, hold a lease on it, reap
deployments whose worker stopped renewing.

Many workers may run against one PostgreSQL; each deployment is claimed once (advisory lock per
environment + ``FOR UPDATE SKIP LOCKED``). A deployment whose lease lapses in building or
deploying is failed as "worker lost" and never re-run.

The interface is four functions — ``claim``, ``renew``, ``release``, ``reap`` — so that a
generic job runtime can take this module's place without touching how a pipeline runs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring
from shipboard.core.sealing import unseal
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import service as deployments
from shipboard.deployments.models import DeploymentRun
from shipboard.environments.pipeline import Pipeline
from shipboard.environments.service import decrypted_secrets
from shipboard.pipelines import repository
from shipboard.pipelines.job import Job
from shipboard.pipelines.recovery import auto_rollback

log = structlog.get_logger("shipboard.worker")


def claim(engine: Engine, keyring: Keyring, *, worker_id: str, lease_s: float) -> Job | None:
    """Claim the head of one idle environment's queue, move it to ``building`` and lease it."""
    with system_transaction(engine) as session:
        busy = repository.busy_environments(session)
        for environment in repository.pending_environments(session):
            if environment in busy or not repository.try_lock_environment(session, environment):
                continue
            # Re-read under the lock: another worker may have claimed and committed.
            if environment in repository.busy_environments(session):
                continue
            head = repository.queue_head(session, environment)
            if head is None:
                continue
            deployment, run = head
            if run.needs_approval and run.approved_by is None:
                continue  # the queue waits behind it: nothing jumps an unapproved deployment
            now = utcnow()
            run.lease_owner = worker_id
            run.lease_expires_at = now + timedelta(seconds=lease_s)
            run.started_at = now
            deployments.transition(session, deployment, "building", actor=f"worker {worker_id}")
            assert run.pipeline is not None
            return Job(
                deployment_id=deployment.id,
                environment=environment,
                version=deployment.version,
                commit_sha=deployment.commit_sha,
                # The step env values and healthcheck URL as written: decrypted only here.
                pipeline=Pipeline.model_validate(
                    unseal(run.pipeline, run.pipeline_secrets, keyring)
                ),
                secrets=decrypted_secrets(session, name=environment, keyring=keyring),
            )
    return None


def renew(
    engine: Engine, deployment_id: uuid.UUID, *, worker_id: str, lease_s: float
) -> str | None:
    """Extend the lease; the reason to stop (lost lease, a cancel request) or None."""
    with system_transaction(engine) as session:
        ours, cancelled_by = repository.renew_lease(
            session, deployment_id, worker_id, utcnow() + timedelta(seconds=lease_s)
        )
    if not ours:
        return "lost lease"
    return f"cancelled by {cancelled_by}" if cancelled_by else None


def release(run: DeploymentRun) -> None:
    """Give the lease up, in the transaction that finishes the deployment."""
    run.lease_owner = None
    run.lease_expires_at = None


def reap(engine: Engine) -> int:
    """Fail deployments whose worker stopped renewing its lease; roll back if enabled."""
    reaped = 0
    with system_transaction(engine) as session:
        for deployment, run in repository.expired_leases(session, utcnow()):
            stage = deployment.status
            deployments.transition(
                session,
                deployment,
                "failed",
                actor="shipboard",
                error_message=f"worker lost during {stage}",
            )
            run.lease_owner = None
            reaped += 1
            log.warning("worker_lost", deployment_id=str(deployment.id), stage=stage)
            if run.deploy_started_at is not None:
                auto_rollback(session, deployment, reason="worker lost during deploy")
    return reaped
