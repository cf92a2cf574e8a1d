"""What ``/readyz`` checks: the database answers, and deployments are not left without a worker.

A worker is *unavailable* when

- an in-process background thread (``shipboard serve`` without ``--no-worker``) has stopped, or
- deployments the worker could run (pending, managed, approved where approval is needed) have
  waited longer than ``SHIPBOARD_READY_QUEUE_STALL_S`` while no worker shows any activity in that
  time: no live lease, no claim, no deployment finished, no scanner run. A busy worker holds a
  lease, so a long deployment elsewhere does not make the instance unready.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.security.models import SecurityScan
from shipboard.security.scanners import TIMEOUT_S as SCAN_TIMEOUT_S


def stopped_threads(app_state: Any) -> list[str]:
    """Names of the in-process background threads that no longer run."""
    threads = getattr(app_state, "background", None) or {}
    return sorted(name for name, thread in threads.items() if not thread.is_alive())


def stalled_queue(engine: Engine, *, stall_s: float) -> str | None:
    """Why deployments wait without a worker, or None when they do not."""
    if stall_s <= 0:
        return None
    now = utcnow()
    horizon = now - timedelta(seconds=stall_s)
    with engine.connect() as conn:
        if is_postgres(conn):
            # Read as the system: row-level security would hide the queue from this connection.
            conn.execute(sa.text("SELECT set_config('shipboard.role', 'admin', true)"))
        oldest = conn.scalar(
            sa.select(sa.func.min(DeploymentConfig.created_at))
            .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
            .where(
                DeploymentConfig.status == "pending",
                DeploymentRun.managed.is_(True),
                sa.or_(
                    DeploymentRun.needs_approval.is_(False), DeploymentRun.approved_by.is_not(None)
                ),
            )
        )
        if oldest is None or oldest > horizon:
            return None
        if _worker_active(conn, now=now, horizon=horizon):
            return None
    waited = (now - oldest).total_seconds()
    return (
        f"deployments have waited {waited:.0f} s and no worker has been active for "
        f"{stall_s:g} s (start `shipboard worker`, or `shipboard serve` without --no-worker)"
    )


def _worker_active(conn: sa.Connection, *, now: Any, horizon: Any) -> bool:
    signs = (
        # A live lease: a worker runs something now.
        sa.select(DeploymentRun.deployment_id).where(DeploymentRun.lease_expires_at >= now),
        # A claim, or a run that ended, since the horizon: the worker was there a moment ago
        # (a long deployment that just finished held the queue behind it).
        sa.select(DeploymentRun.deployment_id).where(DeploymentRun.started_at >= horizon),
        sa.select(DeploymentConfig.id)
        .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(DeploymentRun.managed.is_(True), DeploymentConfig.completed_at >= horizon),
        # A scanner run: workers run those too, without a lease, for up to their timeout.
        sa.select(SecurityScan.id).where(
            SecurityScan.status == "running",
            SecurityScan.started_at >= now - timedelta(seconds=SCAN_TIMEOUT_S),
        ),
    )
    return any(conn.scalar(sa.select(sa.exists(sign))) for sign in signs)
