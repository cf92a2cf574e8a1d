"""Running a claimed deployment: its build, deploy and verify steps in a scratch directory, the
healthcheck, the stage times, and the final status. Lease renewal rides on the steps' checks
for interruption (``leases.renew``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.engine import Engine

from shipboard.core.netguard import OutboundPolicy
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import repository as deployments_repo
from shipboard.deployments import service as deployments
from shipboard.environments.pipeline import Step
from shipboard.pipelines import job as jobs
from shipboard.pipelines import leases
from shipboard.pipelines.healthcheck import check_health
from shipboard.pipelines.job import Interrupted, Job, StageFailed
from shipboard.pipelines.recovery import auto_rollback_by_id
from shipboard.pipelines.runner import run_step

log = structlog.get_logger("shipboard.worker")


@dataclass(frozen=True)
class Execution:
    """What running a job needs from the worker that claimed it."""

    engine: Engine
    worker_id: str
    lease_s: float
    outbound: OutboundPolicy

    def run(self, job: Job) -> None:
        """Run the job's stages in order and record how it ended; never raises a stage failure."""
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
                    self._mark_verify_started(job)
                    if job.pipeline.healthcheck is not None:
                        check_health(
                            self.engine,
                            job,
                            job.pipeline.healthcheck,
                            times,
                            outbound=self.outbound,
                            interrupt=self.interrupt_check(job),
                        )
                for step in steps:
                    self._run_step(job, step, workdir, times)
            self._finish(job, "success", times=times)
            bound.info("deployment_succeeded")
        except StageFailed as failure:
            self._finish(job, "failed", times=times, error=failure.message)
            bound.warning("deployment_failed", error=failure.message)
            if failure.verification:
                auto_rollback_by_id(self.engine, job.deployment_id, reason=failure.message)
        except Interrupted as stop:
            if stop.reason.startswith("cancelled"):
                self._finish(job, "failed", times=times, error=stop.reason)
            bound.warning("deployment_interrupted", reason=stop.reason)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def interrupt_check(self, job: Job) -> Callable[[], str | None]:
        """A check that renews the lease at most every ``min(1 s, lease/3)`` and says why the
        job must stop (lease lost, cancel requested), or None."""
        next_renewal = 0.0

        def check() -> str | None:
            nonlocal next_renewal
            if time.monotonic() < next_renewal:
                return None
            next_renewal = time.monotonic() + min(1.0, self.lease_s / 3)
            return leases.renew(
                self.engine, job.deployment_id, worker_id=self.worker_id, lease_s=self.lease_s
            )

        return check

    def _enter_deploying(self, job: Job) -> None:
        with system_transaction(self.engine) as session:
            deployment = jobs.load(session, job)
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            run.deploy_started_at = utcnow()
            deployments.transition(session, deployment, "deploying", actor="shipboard")

    def _mark_verify_started(self, job: Job) -> None:
        with system_transaction(self.engine) as session:
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            run.verify_started_at = utcnow()
            jobs.append(session, job, [("info", "verification started", "verify")])

    def _run_step(self, job: Job, step: Step, workdir: str, times: dict[str, int]) -> None:
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
        jobs.log(
            self.engine, job, "info", f"step {step.name!r} ({step.stage}) started", "shipboard"
        )

        def on_lines(batch: list[tuple[str, str]]) -> None:
            with system_transaction(self.engine) as session:
                jobs.append(
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
            interrupt=self.interrupt_check(job),
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
        jobs.log(
            self.engine, job, "info", f"step {step.name!r} finished in {elapsed_ms} ms", "shipboard"
        )

    def _finish(
        self, job: Job, status: str, *, times: dict[str, int], error: str | None = None
    ) -> None:
        with system_transaction(self.engine) as session:
            deployment = jobs.load(session, job)
            run = deployments_repo.get_run(session, job.deployment_id)
            assert run is not None
            if deployment.status not in ("building", "deploying"):
                return  # reaped meanwhile: its state is already final
            deployment.build_time = times["build"]
            deployment.deploy_time = times["deploy"] if run.deploy_started_at else None
            run.verify_time = times["verify"] if run.verify_started_at else None
            leases.release(run)
            deployments.transition(
                session, deployment, status, actor="shipboard", error_message=error
            )
            if status == "success" and job.pipeline.watch is not None:
                run.watch_state = "running"
                run.watch_next_at = utcnow() + timedelta(seconds=job.pipeline.watch.interval_s)
                jobs.append(
                    session,
                    job,
                    [("info", f"watching for {job.pipeline.watch.window_s:g} s", "verify")],
                )
