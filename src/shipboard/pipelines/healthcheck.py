"""The pipeline's healthcheck: GET a URL until it answers the expected status or the retries run
out; the attempts are recorded in the deployment's analysis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from shipboard.core.netguard import OutboundPolicy, OutboundRefused
from shipboard.core.redaction import redact_text, redact_url
from shipboard.db.engine import system_transaction
from shipboard.deployments import repository as deployments_repo
from shipboard.environments.pipeline import Healthcheck
from shipboard.pipelines import job as jobs
from shipboard.pipelines.job import Interrupted, Job, StageFailed


def check_health(
    engine: Engine,
    job: Job,
    check: Healthcheck,
    times: dict[str, int],
    *,
    outbound: OutboundPolicy,
    interrupt: Callable[[], str | None],
) -> None:
    """Run ``check``; raise ``StageFailed`` (a verification failure) unless it passes."""
    started = time.monotonic()
    attempts: list[dict[str, Any]] = []
    # The deployment's log and analysis are read by every viewer.
    shown_url = redact_url(check.url)
    for attempt in range(check.retries + 1):
        if attempt:
            time.sleep(check.interval_s)
        reason = interrupt()
        if reason is not None:
            raise Interrupted(reason)
        refused = False
        try:
            with outbound.client(timeout=check.timeout_s) as client:
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
        jobs.log(
            engine,
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
    _record_analysis(engine, job, analysis)
    if not passed:
        raise StageFailed(
            f"healthcheck {shown_url} failed: {analysis['reason']}", verification=True
        )


def _record_analysis(engine: Engine, job: Job, entry: dict[str, Any]) -> None:
    with system_transaction(engine) as session:
        run = deployments_repo.get_run(session, job.deployment_id)
        assert run is not None
        run.analysis = [*(run.analysis or []), entry]
