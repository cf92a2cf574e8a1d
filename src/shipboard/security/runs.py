"""Requested scans: queued by the API, run by a worker with the real scanner."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Conflict, InvalidInput, ShipboardError
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.environments.service import plaintext_config, require_environment
from shipboard.jobs import queue
from shipboard.security import ingest, repository, scanners, service
from shipboard.security.models import ScanRequest, SecurityScan
from shipboard.security.schemas import ScanRun, SecurityScanRead

log = structlog.get_logger("shipboard.scans")
SCAN_JOB = "security.scan"


def request_scan(
    session: Session,
    *,
    data: ScanRun,
    roots: list[str],
    protected: Sequence[Path] = (),
    requested_by: str,
    audit_context: AuditContext,
) -> SecurityScanRead:
    """Queue a scan (``pending``); a worker runs it."""
    require_environment(session, data.environment)
    try:
        target = scanners.allowed_target(data.target, roots, protected)
    except scanners.ScanError as exc:
        raise InvalidInput(str(exc), errors=[{"loc": ["body", "target"], "msg": str(exc)}]) from exc
    scan = SecurityScan(
        id=uuid.uuid4(),
        type=data.type,
        environment=data.environment,
        status="pending",
        started_at=utcnow(),
    )
    repository.add(session, scan)
    repository.add(
        session,
        ScanRequest(
            scan_id=scan.id,
            target=str(target),
            tool=data.tool or scanners.DEFAULT_TOOLS[data.type],
            requested_by=requested_by,
        ),
    )
    queue.enqueue(session, SCAN_JOB, {"scan_id": str(scan.id)})
    audit.record(
        session,
        context=audit_context,
        action="scan.request",
        target_type="scan",
        target_id=str(scan.id),
        details={"type": data.type, "target": str(target)},
    )
    return SecurityScanRead.model_validate(scan)


def run_next(
    engine: Engine,
    *,
    worker: str,
    roots: list[str],
    protected: Sequence[Path] = (),
    keyring: Keyring | None = None,
) -> bool:
    """Claim the oldest queued scan job, run it, store its result. True if one ran."""
    return queue.run_one(engine, [scan_job(roots, protected, keyring=keyring)], worker=worker)


def scan_job(
    roots: list[str], protected: Sequence[Path] = (), *, keyring: Keyring | None = None
) -> queue.JobKind:
    """Requested scans as the job runtime runs them."""
    return queue.JobKind(
        SCAN_JOB,
        run=lambda engine, claimed: run_scan(
            engine,
            uuid.UUID(claimed.payload["scan_id"]),
            worker=claimed.worker,
            roots=roots,
            protected=protected,
            keyring=keyring,
        ),
        give_up=give_up_scan,
    )


def give_up_scan(session: Session, payload: dict[str, Any], why: str) -> None:
    """The scan a job stood for fails when the job is given up (its worker was lost)."""
    scan = repository.get_scan(session, uuid.UUID(payload["scan_id"]))
    if scan is not None and scan.status in ("pending", "running"):
        scan.status, scan.completed_at = "failed", utcnow()
        scan.error_message = f"the scan could not be run: {why}"[:500]


def run_scan(
    engine: Engine,
    scan_id: uuid.UUID,
    *,
    worker: str,
    roots: list[str],
    protected: Sequence[Path] = (),
    keyring: Keyring | None = None,
) -> None:
    """Run one requested scan with the real scanner and store its result. Run again after a
    lost worker, it starts over."""
    open_txn = ingest.system_opener(engine)
    # Imports whose process died before they finished are discarded here, on every node.
    ingest.reap_abandoned(open_txn)
    with system_transaction(engine) as session:
        row = repository.requested_scan(session, scan_id)
        if row is None:
            return  # deleted, or finished by a run whose worker was then taken for lost
        scan, request = row
        scan.status, scan.started_at, request.worker = "running", utcnow(), worker
        job: dict[str, Any] = {
            "scan_id": scan.id,
            "type": scan.type,
            "environment": scan.environment,
            "target": request.target,
            "tool": request.tool,
            # A credential in config.security (an osv_url's token) is used as written.
            "config": plaintext_config(
                require_environment(session, scan.environment), keyring=keyring
            ),
        }
    error: str | None = None
    detail: str | None = None
    output = b""
    try:
        # Again here: a symlink on the way may point elsewhere now than when it was requested.
        target = scanners.allowed_target(job["target"], roots, protected)
        with tempfile.TemporaryDirectory(prefix="shipboard-scan-") as cwd:
            output = scanners.run(
                scanners.command(job["type"], job["tool"], target, job["config"]), cwd=cwd
            )
    except scanners.ScanError as exc:
        error, detail = str(exc), exc.detail
    report = None
    if error is None:
        # Parsed before the write transaction: parsing holds no lock.
        try:
            report = service.parse(output, scan_type=job["type"], tool=job["tool"])
        except ShipboardError as exc:
            error = f"{job['tool']} output could not be read as its report"
            detail = exc.detail
    if error is None and report is not None:
        try:
            service.import_report(
                open_txn,
                environment=job["environment"],
                report=report,
                audit_context=None,
                scan_id=job["scan_id"],
                target=job["target"],
            )
        except Conflict as exc:
            error = exc.detail  # another import of the same target is in progress
        except ShipboardError as exc:
            # The parser's words may quote the report, and the report quotes scanned files.
            error = f"{job['tool']} output could not be read as its report"
            detail = exc.detail
    with system_transaction(engine) as session:
        ran = repository.get_scan(session, job["scan_id"])
        if ran is None:
            return
        if ran.status == "failed" and error is None:
            # The report said the scanner failed; its words may quote scanned files too.
            error = f"{job['tool']} reported that it failed"
            detail = ran.error_message
        if error is not None:
            if detail is not None:
                error += f"; the server log has the details (scan_failed, scan_id {ran.id})"
            ran.status, ran.completed_at, ran.error_message = "failed", utcnow(), error
            log.warning("scan_failed", scan_id=str(ran.id), error=error, detail=detail)
