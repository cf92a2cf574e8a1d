"""The worker: claims deployments, runs their pipelines, holds a lease while it does.

Many workers may run against one PostgreSQL; each deployment is claimed once (advisory lock per
environment + ``FOR UPDATE SKIP LOCKED``). A deployment whose lease lapses in building or
deploying is failed as "worker lost" and never re-run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring
from shipboard.core.errors import ShipboardError
from shipboard.core.netguard import OutboundPolicy, OutboundRefused
from shipboard.core.redaction import redact_text, redact_url
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import repository as deployments_repo
from shipboard.deployments import service as deployments
from shipboard.deployments.models import DeploymentConfig
from shipboard.environments.pipeline import Healthcheck, Pipeline, Step
from shipboard.environments.service import decrypted_secrets
from shipboard.environments.validation import stored_mapping
from shipboard.monitoring import repository as monitoring_repo
from shipboard.pipelines import analysis, repository
from shipboard.pipelines.runner import run_step
from shipboard.security import runs

log = structlog.get_logger("shipboard.worker")
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
    ) -> None:
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

    # --- the loop ---------------------------------------------------------------------------

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
            return runs.run_next(
                self.engine,
                worker=self.worker_id,
                roots=self.scan_roots,
                protected=self.scan_protected,
            )
        self.execute(job)
        return True

    # --- claiming and reaping ---------------------------------------------------------------

    def claim(self) -> Job | None:
        with system_transaction(self.engine) as session:
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
                run.lease_owner = self.worker_id
                run.lease_expires_at = now + timedelta(seconds=self.lease_s)
                run.started_at = now
                deployments.transition(
                    session, deployment, "building", actor=f"worker {self.worker_id}"
                )
                assert run.pipeline is not None
                return Job(
                    deployment_id=deployment.id,
                    environment=environment,
                    version=deployment.version,
                    commit_sha=deployment.commit_sha,
                    pipeline=Pipeline.model_validate(run.pipeline),
                    secrets=decrypted_secrets(session, name=environment, keyring=self.keyring),
                )
        return None

    def reap(self) -> int:
        """Fail deployments whose worker stopped renewing its lease; roll back if enabled."""
        reaped = 0
        with system_transaction(self.engine) as session:
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
                    self._auto_rollback(session, deployment, reason="worker lost during deploy")
        return reaped

    # --- post-deploy watch -------------------------------------------------------------------

    def watch(self) -> int:
        """Take one measurement of every check of every watch that is due; act on verdicts."""
        evaluated = 0
        with system_transaction(self.engine) as session:
            now = utcnow()
            for deployment, run in repository.due_watches(session, now):
                evaluated += 1
                self._evaluate_watch(session, deployment, run, now)
        return evaluated

    def _evaluate_watch(
        self, session: Any, deployment: DeploymentConfig, run: Any, now: datetime
    ) -> None:
        assert run.pipeline is not None
        watch = Pipeline.model_validate(run.pipeline).watch
        assert watch is not None
        assert deployment.completed_at is not None
        if deployment.status != "success":
            run.watch_state = "stopped"
            return
        interval = timedelta(seconds=watch.interval_s)
        window = timedelta(seconds=watch.window_s)
        deploy_start = run.deploy_started_at or deployment.completed_at
        # Contiguous intervals: each measurement starts where the previous one ended, so a point
        # that lands while the worker is busy elsewhere is still counted.
        previous = [e["at"] for e in run.analysis or [] if e.get("kind") == "watch"]
        since = datetime.fromisoformat(previous[-1]) if previous else deployment.completed_at
        taken = []
        for check in watch.checks:
            if check.kind == "threshold":
                points = monitoring_repo.values(
                    session,
                    environment=deployment.environment,
                    name=check.metric,
                    tags=check.tags,
                    since=since,
                    until=now,
                )
                measurement = analysis.threshold(
                    check.name,
                    points,
                    aggregate=check.aggregate,
                    op=check.op,
                    value=check.value if check.value is not None else 0.0,
                )
            else:
                before = monitoring_repo.values(
                    session,
                    environment=deployment.environment,
                    name=check.metric,
                    tags=check.tags,
                    since=deploy_start - window,
                    until=deploy_start,
                )
                after = monitoring_repo.values(
                    session,
                    environment=deployment.environment,
                    name=check.metric,
                    tags=check.tags,
                    since=deployment.completed_at,
                    until=now,
                )
                measurement = analysis.compare(
                    check.name,
                    before,
                    after,
                    direction=check.direction,
                    min_effect=check.min_effect,
                    alpha=check.alpha,
                )
            taken.append({"kind": "watch", "at": now.isoformat(), **measurement.as_dict()})
        history = [*(run.analysis or []), *taken]
        run.analysis = history
        for entry in taken:
            level = "error" if entry["result"] == "Failed" else "info"
            deployments.log_line(
                session,
                deployment.id,
                level,
                f"watch {entry['check']}: {entry['result']} ({entry['reason']})",
            )
        watch_entries = [e for e in history if e.get("kind") == "watch"]
        if not analysis.verdict(watch_entries, watch.failure_limit):
            run.watch_state = "failed"
            run.watch_next_at = None
            failures = sum(1 for e in watch_entries if e["result"] == "Failed")
            reason = f"watch failed: {failures} failed measurement(s), limit {watch.failure_limit}"
            deployments.log_line(session, deployment.id, "error", reason)
            self._auto_rollback(session, deployment, reason=reason)
        elif now >= deployment.completed_at + window:
            run.watch_state = "passed"
            run.watch_next_at = None
            deployments.log_line(session, deployment.id, "info", "watch passed")
        else:
            run.watch_next_at = now + interval

    # --- running ----------------------------------------------------------------------------

    def execute(self, job: Job) -> None:
        bound = log.bind(deployment_id=str(job.deployment_id), environment=job.environment)
        bound.info("deployment_started", version=job.version)
        workdir = tempfile.mkdtemp(prefix=f"shipboard-{job.deployment_id}-")
        times = {"build": 0, "deploy": 0, "verify": 0}
        try:
            for stage in ("build", "deploy", "verify"):
                steps = [s for s in job.pipeline.steps if s.stage == stage]
                if stage == "deploy":
                    self._enter_deploying(job)
                if stage == "verify":
                    self._mark(job, verify_started=True)
                    if job.pipeline.healthcheck is not None:
                        self._healthcheck(job, job.pipeline.healthcheck, times)
                for step in steps:
                    self._run(job, step, workdir, times)
            self._finish(job, "success", times=times)
            bound.info("deployment_succeeded")
        except StageFailed as failure:
            self._finish(job, "failed", times=times, error=failure.message)
            bound.warning("deployment_failed", error=failure.message)
            if failure.verification:
                self._auto_rollback_by_id(job.deployment_id, reason=failure.message)
        except Interrupted as stop:
            if stop.reason.startswith("cancelled"):
                self._finish(job, "failed", times=times, error=stop.reason)
            bound.warning("deployment_interrupted", reason=stop.reason)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _enter_deploying(self, job: Job) -> None:
        with system_transaction(self.engine) as session:
            deployment = self._load(session, job)
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            run.deploy_started_at = utcnow()
            deployments.transition(session, deployment, "deploying", actor="shipboard")

    def _mark(self, job: Job, *, verify_started: bool) -> None:
        with system_transaction(self.engine) as session:
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            if verify_started:
                run.verify_started_at = utcnow()
            self._append(session, job, [("info", "verification started", "verify")])

    def _run(self, job: Job, step: Step, workdir: str, times: dict[str, int]) -> None:
        """Run one step; its time counts toward its stage whatever the outcome (a failed
        deployment's deploy_time is the time its deploy steps ran, not 0)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": workdir,
            "TMPDIR": workdir,
            **step.env,
            **job.secrets,
            "SHIPBOARD_ENVIRONMENT": job.environment,
            "SHIPBOARD_VERSION": job.version,
            "SHIPBOARD_COMMIT_SHA": job.commit_sha,
            "SHIPBOARD_DEPLOYMENT_ID": str(job.deployment_id),
        }
        self._log(job, "info", f"step {step.name!r} ({step.stage}) started", "shipboard")

        def on_lines(batch: list[tuple[str, str]]) -> None:
            with system_transaction(self.engine) as session:
                self._append(
                    session,
                    job,
                    [
                        ("info" if stream == "stdout" else "warn", line, step.stage)
                        for stream, line in batch
                    ],
                )

        started = time.monotonic()
        outcome = run_step(
            step.run,
            cwd=workdir,
            env=env,
            timeout_s=step.timeout_s,
            on_lines=on_lines,
            interrupt=self._interrupt_check(job),
            secrets=job.secrets.values(),
        )
        elapsed_ms = round((time.monotonic() - started) * 1000)
        times[step.stage] += elapsed_ms
        if outcome.reason == "timeout":
            raise StageFailed(
                f"step {step.name!r} ({step.stage}) timed out after {step.timeout_s:g} s",
                verification=step.stage == "verify",
            )
        if outcome.reason is not None:
            raise Interrupted(outcome.reason)
        if outcome.exit_code != 0:
            raise StageFailed(
                f"step {step.name!r} ({step.stage}) exited with code {outcome.exit_code}",
                verification=step.stage == "verify",
            )
        self._log(job, "info", f"step {step.name!r} finished in {elapsed_ms} ms", "shipboard")

    def _interrupt_check(self, job: Job) -> Callable[[], str | None]:
        next_renewal = 0.0

        def check() -> str | None:
            nonlocal next_renewal
            if time.monotonic() < next_renewal:
                return None
            next_renewal = time.monotonic() + min(1.0, self.lease_s / 3)
            with system_transaction(self.engine) as session:
                ours, cancelled_by = repository.renew_lease(
                    session,
                    job.deployment_id,
                    self.worker_id,
                    utcnow() + timedelta(seconds=self.lease_s),
                )
            if not ours:
                return "lost lease"
            return f"cancelled by {cancelled_by}" if cancelled_by else None

        return check

    def _healthcheck(self, job: Job, check: Healthcheck, times: dict[str, int]) -> None:
        started = time.monotonic()
        attempts: list[dict[str, Any]] = []
        # The deployment's log and analysis are read by every viewer.
        shown_url = redact_url(check.url)
        interrupt = self._interrupt_check(job)
        for attempt in range(check.retries + 1):
            if attempt:
                time.sleep(check.interval_s)
            reason = interrupt()
            if reason is not None:
                raise Interrupted(reason)
            refused = False
            try:
                with self.outbound.client(timeout=check.timeout_s) as client:
                    response = client.get(check.url)
                result: dict[str, Any] = {"status": response.status_code}
            except httpx.HTTPError as exc:
                result = {"error": type(exc).__name__}
            except OutboundRefused as exc:
                # Policy, not a flaky target: retrying would ask the same question again.
                result = {"error": redact_text(f"refused ({exc})")}
                refused = True
            attempts.append(result)
            ok = result.get("status") == check.expect_status
            self._log(
                job,
                "info" if ok else "warn",
                f"healthcheck {shown_url} attempt {attempt + 1}: "
                + (f"HTTP {result['status']}" if "status" in result else result["error"]),
                "verify",
            )
            if ok or refused:
                break
        elapsed_ms = round((time.monotonic() - started) * 1000)
        times["verify"] += elapsed_ms
        passed = attempts[-1].get("status") == check.expect_status
        last = attempts[-1]
        got = f"HTTP {last['status']}" if "status" in last else last["error"]
        analysis = {
            "check": "healthcheck",
            "url": shown_url,
            "expected_status": check.expect_status,
            "attempts": attempts,
            "result": "Successful" if passed else "Failed",
            "reason": f"HTTP {check.expect_status} on attempt {len(attempts)}"
            if passed
            else f"expected HTTP {check.expect_status}, got {got} after {len(attempts)} attempt(s)",
            "elapsed_ms": elapsed_ms,
        }
        self._record_analysis(job, analysis)
        if not passed:
            raise StageFailed(
                f"healthcheck {shown_url} failed: {analysis['reason']}", verification=True
            )

    def _record_analysis(self, job: Job, entry: dict[str, Any]) -> None:
        with system_transaction(self.engine) as session:
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            run.analysis = [*(run.analysis or []), entry]

    def _finish(
        self, job: Job, status: str, *, times: dict[str, int], error: str | None = None
    ) -> None:
        with system_transaction(self.engine) as session:
            deployment = self._load(session, job)
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            if deployment.status not in ("building", "deploying"):
                return  # reaped meanwhile: its state is already final
            deployment.build_time = times["build"]
            deployment.deploy_time = times["deploy"] if run.deploy_started_at else None
            run.verify_time = times["verify"] if run.verify_started_at else None
            run.lease_owner = None
            run.lease_expires_at = None
            deployments.transition(
                session, deployment, status, actor="shipboard", error_message=error
            )
            if status == "success" and job.pipeline.watch is not None:
                run.watch_state = "running"
                run.watch_next_at = utcnow() + timedelta(seconds=job.pipeline.watch.interval_s)
                self._append(
                    session,
                    job,
                    [("info", f"watching for {job.pipeline.watch.window_s:g} s", "verify")],
                )

    def _auto_rollback_by_id(self, deployment_id: uuid.UUID, *, reason: str) -> None:
        with system_transaction(self.engine) as session:
            deployment = deployments_repo.get(session, deployment_id)
            if deployment is not None:
                self._auto_rollback(session, deployment, reason=reason)

    def _auto_rollback(self, session: Any, deployment: DeploymentConfig, *, reason: str) -> None:
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

    # --- logs -------------------------------------------------------------------------------

    def _load(self, session: Any, job: Job) -> DeploymentConfig:
        deployment = deployments_repo.get_for_update(session, job.deployment_id)
        assert deployment is not None
        return deployment

    def _log(self, job: Job, level: str, message: str, source: str) -> None:
        with system_transaction(self.engine) as session:
            self._append(session, job, [(level, message, source)])

    def _append(self, session: Any, job: Job, lines: list[tuple[str, str, str]]) -> None:
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
