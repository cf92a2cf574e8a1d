"""The worker: a loop that reaps lost leases, evaluates due watches, claims a deployment and
runs it. (Requested scans run on the job runtime's queue: ``security/tasks.py``.)

Where each part lives: the queue and its leases in ``leases`` (claim, renew, release, reap),
running a claimed deployment in ``execution`` (steps) and ``healthcheck``, the post-deploy watch
in ``watch``, automatic rollback in ``recovery``.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring
from shipboard.core.netguard import OutboundPolicy
from shipboard.core.promql import PromStore
from shipboard.pipelines import leases
from shipboard.pipelines.execution import Execution
from shipboard.pipelines.job import Job
from shipboard.pipelines.watch import watch_due

log = structlog.get_logger("shipboard.worker")


class Worker:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        scan_roots: list[str] | None = None,
        scan_protected: Sequence[Path] = (),
        outbound: OutboundPolicy | None = None,
        metrics_store: PromStore | None = None,
    ) -> None:
        # The user's Prometheus-compatible store, for PromQL watch checks (None: not set).
        self.metrics_store = metrics_store
        self.scan_roots = scan_roots or ["."]
        self.scan_protected = scan_protected
        self.outbound = outbound or OutboundPolicy()
        self.engine = engine
        self.keyring = keyring
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        # Set by the API in the same process when it commits new work, so an idle worker
        # starts at once instead of at its next poll.
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        log.info("worker_started", worker=self.worker_id)
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("worker_step_failed", worker=self.worker_id)
                busy = False
            if not busy:
                self.wake.wait(self.poll_s)
                self.wake.clear()
        log.info("worker_stopped", worker=self.worker_id)

    def step(self) -> bool:
        """Reap lost leases, evaluate due watches, then claim and run one deployment.
        True if one ran."""
        self.reap()
        self.watch()
        job = self.claim()
        if job is None:
            return False  # requested scans run on the job runtime's queue (security/tasks.py)
        self.execute(job)
        return True

    def claim(self) -> Job | None:
        return leases.claim(
            self.engine, self.keyring, worker_id=self.worker_id, lease_s=self.lease_s
        )

    def reap(self) -> int:
        """Fail deployments whose worker stopped renewing its lease; roll back if enabled."""
        return leases.reap(self.engine)

    def watch(self) -> int:
        """Take one measurement of every check of every watch that is due; act on verdicts."""
        return watch_due(self.engine, store=self.metrics_store)

    def execute(self, job: Job) -> None:
        Execution(
            engine=self.engine,
            worker_id=self.worker_id,
            lease_s=self.lease_s,
            outbound=self.outbound,
        ).run(job)


def start_in_thread(worker: Worker) -> tuple[threading.Thread, threading.Event]:
    stop = _LinkedStop(worker.wake)
    thread = threading.Thread(target=worker.run, args=(stop,), name="shipboard-worker", daemon=True)
    thread.start()
    return thread, stop


class _LinkedStop(threading.Event):
    """A stop event that also wakes the worker, so stopping does not wait for a poll."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.set()
