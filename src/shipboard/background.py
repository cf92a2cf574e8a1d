"""What the background thread of a process runs: every domain's ``tasks.py``, gathered into one
job runtime (``jobs/``). The process entry points (``shipboard serve``, ``shipboard worker``)
build it here; the runtime itself knows nothing of the domains."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from shipboard.alerting import tasks as alerting_tasks
from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.crypto import Keyring
from shipboard.core.netguard import OutboundPolicy
from shipboard.core.promql import PromStore
from shipboard.jobs.queue import QueueWorker
from shipboard.jobs.runtime import Loop, Runtime
from shipboard.monitoring import tasks as monitoring_tasks
from shipboard.monitoring.forwarding import Forwarding, forwarding_from
from shipboard.notifications import delivery, grouping
from shipboard.notifications import tasks as notification_tasks
from shipboard.ops import tasks as ops_tasks
from shipboard.reports import tasks as report_tasks
from shipboard.security import tasks as security_tasks


def runtime(
    engine: Engine,
    keyring: Keyring,
    *,
    eval_interval_s: float = 15.0,
    poll_s: float = 0.5,
    max_attempts: int = delivery.MAX_ATTEMPTS,
    max_age_s: float = delivery.MAX_AGE.total_seconds(),
    scan_roots: list[str] | None = None,
    scan_protected: Sequence[Path] = (),
    backup_schedule: str | None = None,
    backup_keep: int = 7,
    backup_dir: Path | None = None,
    outbound: OutboundPolicy | None = None,
    alertmanager_resend_s: float = grouping.ALERTMANAGER_RESEND_S,
    public_url: str = DEFAULT_PUBLIC_URL,
    forwarding: Forwarding | None = None,
    metrics_store: PromStore | None = None,
) -> Runtime:
    """The schedule (on the elected node), the job queue's loop and the delivery loop (on every
    node)."""
    outbound = outbound or OutboundPolicy()
    tasks = [
        *alerting_tasks.scheduled(
            engine,
            eval_interval_s=eval_interval_s,
            alertmanager_resend_s=alertmanager_resend_s,
            store=metrics_store,
        ),
        *monitoring_tasks.scheduled(
            engine, keyring=keyring, outbound=outbound, forwarding=forwarding
        ),
        *security_tasks.scheduled(roots=scan_roots or ["."], protected=scan_protected),
        *report_tasks.scheduled(),
        *ops_tasks.scheduled(
            engine, backup_schedule=backup_schedule, backup_dir=backup_dir, backup_keep=backup_keep
        ),
    ]
    kinds = [
        *security_tasks.jobs(roots=scan_roots or ["."], protected=scan_protected, keyring=keyring),
        *report_tasks.jobs(metrics_store=metrics_store),
    ]
    loops: list[tuple[str, Loop]] = [("jobs", QueueWorker(engine, kinds, poll_s=poll_s))]
    loops += notification_tasks.loops(
        engine,
        keyring,
        poll_s=poll_s,
        max_attempts=max_attempts,
        max_age_s=max_age_s,
        outbound=outbound,
        public_url=public_url,
    )
    return Runtime(engine, tasks=tasks, loops=loops, poll_s=poll_s, leader_check_s=eval_interval_s)


def from_settings(engine: Engine, keyring: Keyring, settings: Any) -> Runtime:
    return runtime(
        engine,
        keyring,
        eval_interval_s=settings.eval_interval_s,
        max_attempts=settings.notify_max_attempts,
        max_age_s=settings.notify_max_age_s,
        scan_roots=settings.scan_roots.split(":"),
        scan_protected=settings.scan_protected,
        backup_schedule=settings.backup_schedule,
        backup_keep=settings.backup_keep,
        backup_dir=settings.effective_backup_dir,
        outbound=settings.outbound_policy,
        alertmanager_resend_s=settings.alertmanager_resend_s,
        public_url=settings.effective_public_url,
        forwarding=forwarding_from(settings),
        metrics_store=settings.metrics_store(),
    )
