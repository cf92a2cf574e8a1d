"""Writing a parsed report in bounded chunks, each its own short transaction, so that on SQLite
the database's only write lock is released between chunks and other writers keep flowing.

1. **Claim** (one short transaction): the scope (environment, scan type, tool, target) gets a
   row in ``security_imports`` with a lease, and the scan is ``running``. A second import of the
   same scope is refused (409) while the lease holds; one whose lease lapsed (its process died)
   is taken over after what it staged is discarded.
2. **Stage** (a transaction per ``chunk_rows`` findings): the findings, the identities first
   seen among them and the occurrences that join them. No read sees them yet: every query of
   current or unresolved findings, and the scan's own findings list, leave out the findings of
   a scan whose import holds a claim; known identities are untouched.
3. **Flip** (one transaction): known identities move to their new findings in one statement,
   those reopened, adopted or re-triaged get their new state, those the report lacks are
   resolved — only now, after the last chunk — the claim is released (the new findings become
   visible), and the import is audited. The scan's summary (the compliance score counts every
   unresolved finding of the environment) is read afterwards with no write lock held, and
   stored with the scan's completion in a last short transaction.

An import that fails on the way discards what it staged (the scan too, when the import made it):
nothing half-written stays. If its process dies instead, the lease lapses and the next import
of the scope, or the scan worker's sweep (``reap_abandoned``), discards it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.errors import Conflict
from shipboard.core.time import utcnow
from shipboard.db.engine import bind_identity, is_postgres, transaction
from shipboard.security import matching, repository
from shipboard.security.importers import ParsedReport
from shipboard.security.models import SecurityImport, SecurityScan

log = structlog.get_logger("shipboard.scans")

# One chunk's transaction holds SQLite's write lock for tens of milliseconds.
CHUNK_ROWS = 2_000
# A claim lapses this long after the last chunk its import wrote.
LEASE = timedelta(minutes=5)
# On SQLite, after each chunk the importer lets go of the lock this long. SQLite's busy handler
# retries a waiting writer at growing intervals, at most 100 ms apart: an importer that began
# its next chunk at once (or after a few ms) took the lock again before most waiters' next try,
# and one writer waited 2 s across several chunks. A gap longer than the longest interval lets
# every writer that waits get in. PostgreSQL has no database-wide write lock: no pause there.
PAUSE_S = 0.11

Opener = Callable[[bool], AbstractContextManager[Session]]
BUSY = (
    "another import of the same environment, scan type, tool and target is in progress; "
    "try again when it has finished"
)


def system_opener(engine: Engine) -> Opener:
    """Transactions acting as the system admin (the scan worker), read-only when not writing."""

    @contextmanager
    def open_txn(write: bool) -> Iterator[Session]:
        with transaction(engine, write=write) as session:
            repository.act_as_system(session)
            yield session

    return open_txn


def caller_opener(engine: Engine, *, role: str, user_id: str) -> Opener:
    """Transactions bound to a caller's identity (row-level security): an import's chunks are
    transactions of their own, each bound again."""

    @contextmanager
    def open_txn(write: bool) -> Iterator[Session]:
        with transaction(engine, write=write) as session:
            bind_identity(session, role=role, user_id=user_id)
            yield session

    return open_txn


def scope_key(environment: str, scan_type: str, tool: str, target: str) -> str:
    """The guard's key: one import at a time per environment, scan type, tool and target."""
    text = json.dumps([environment, scan_type, tool, target])
    return hashlib.sha256(text.encode()).hexdigest()


def claim(session: Session, *, key: str, scan: SecurityScan, lease: timedelta = LEASE) -> None:
    """Take the scope for ``scan``'s import, or Conflict while another import holds it."""
    moment = utcnow()
    held = repository.get_import(session, key)
    if held is not None:
        if held.expires_at > moment:
            raise Conflict(BUSY)
        _abandon(session, held)
    try:
        repository.add_import(
            session,
            SecurityImport(
                scope=key, scan_id=scan.id, started_at=moment, expires_at=moment + lease
            ),
        )
    except sa.exc.IntegrityError as exc:
        # PostgreSQL: another import claimed the scope between our look and our insert.
        raise Conflict(BUSY) from exc


def _abandon(session: Session, held: SecurityImport) -> None:
    """Discard what an import whose lease lapsed staged; its scan failed."""
    discarded = repository.discard_staged(session, scan_id=held.scan_id)
    scan = repository.get_scan(session, held.scan_id)
    if scan is not None and scan.status == "running":
        scan.status, scan.completed_at = "failed", utcnow()
        scan.error_message = "the import stopped before it finished (its lease lapsed)"
    repository.release_import(session, scope=held.scope, scan_id=held.scan_id)
    session.flush()
    log.warning("scan_import_abandoned", scan_id=str(held.scan_id), discarded=discarded)


def reap_abandoned(open_txn: Opener) -> int:
    """Discard every import whose lease lapsed; how many there were."""
    with open_txn(False) as session:
        if not repository.lapsed_imports(session, now=utcnow(), lock=False):
            return 0  # the usual case, and no write lock taken to learn it
    with open_txn(True) as session:
        lapsed = repository.lapsed_imports(session, now=utcnow())
        for held in lapsed:
            _abandon(session, held)
        return len(lapsed)


def stage(
    open_txn: Opener,
    *,
    key: str,
    scan_id: uuid.UUID,
    plan: matching.Plan,
    chunk_rows: int = CHUNK_ROWS,
    lease: timedelta = LEASE,
) -> None:
    """Write the plan's new rows a slice of ``chunk_rows`` findings at a time, each slice its
    own transaction: its findings, the identities first seen among them, and the occurrences
    joining the two (parents before children). Every identity staged has its occurrence, so a
    failed import finds all it staged through the findings of its scan."""
    for start in range(0, len(plan.findings), chunk_rows):
        end = start + chunk_rows
        first, last = bisect_left(plan.created_for, start), bisect_left(plan.created_for, end)
        with open_txn(True) as session:
            keep(session, key=key, scan_id=scan_id, lease=lease)
            repository.insert_findings(session, plan.findings[start:end])
            repository.insert_identities(session, plan.created[first:last])
            repository.insert_occurrences(session, plan.occurrences[start:end])
            pause = 0.0 if is_postgres(session) else PAUSE_S
        time.sleep(pause)


def keep(session: Session, *, key: str, scan_id: uuid.UUID, lease: timedelta = LEASE) -> None:
    """Renew the claim, or Conflict if it lapsed and another import took the scope."""
    if not repository.renew_import(session, scope=key, scan_id=scan_id, until=utcnow() + lease):
        raise Conflict("the import's claim lapsed and another import of its scope took over")


def flip(
    session: Session, *, key: str, scan_id: uuid.UUID, plan: matching.Plan, now: datetime
) -> None:
    """Make a staged import current, in the caller's transaction: identities seen again move
    to their new findings (one statement), those that changed otherwise get their new state,
    those the report lacks are resolved, and the claim is released — which is what makes the
    scan's findings visible."""
    keep(session, key=key, scan_id=scan_id)
    if plan.new < len(plan.findings):  # some were seen before
        repository.advance_seen(session, scan_id=scan_id, now=now)
    repository.update_seen(session, plan.changed)
    repository.resolve(session, plan.gone, now)
    repository.release_import(session, scope=key, scan_id=scan_id)


def discard(open_txn: Opener, *, key: str, scan_id: uuid.UUID, drop_scan: bool) -> None:
    """Undo a failed import's staging (and its scan, if the import made it)."""
    try:
        with open_txn(True) as session:
            discarded = repository.discard_staged(session, scan_id=scan_id)
            repository.release_import(session, scope=key, scan_id=scan_id)
            if drop_scan:
                repository.delete_scan(session, scan_id)
        log.info("scan_import_discarded", scan_id=str(scan_id), discarded=discarded)
    except Exception:
        log.exception("scan_import_discard_failed", scan_id=str(scan_id))


def plan_for(
    open_txn: Opener,
    report: ParsedReport,
    *,
    environment: str,
    target: str,
    scan_id: uuid.UUID,
    now: datetime,
) -> matching.Plan:
    """Read the scope's identities in a read-only transaction; match outside any."""
    with open_txn(False) as session:
        known = repository.known_identities(
            session,
            environment=environment,
            scan_type=report.scan_type,
            tool=report.tool,
            target=target,
            with_location=matching.is_partial(report),
        )
    return matching.plan(
        report, known, environment=environment, target=target, scan_id=scan_id, now=now
    )
