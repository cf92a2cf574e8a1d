"""Security: findings with filters, a finding's detail and triage, scan history with the
compliance score over time, and importing a report."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from shipboard.auth.deps import audit_context_of
from shipboard.core import charts
from shipboard.core.errors import InvalidInput, NotFound, PayloadTooLarge
from shipboard.core.time import utcnow
from shipboard.core.types import ENVIRONMENTS
from shipboard.db.engine import transaction
from shipboard.environments.service import max_upload_bytes
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.security import ingest
from shipboard.security import service as security
from shipboard.security.models import SCAN_TYPES
from shipboard.security.schemas import SecurityScanFilter, SecurityScanRead, Triage
from shipboard.web.deps import DeployerForm, UnlockedDeployerForm, Viewer
from shipboard.web.helpers import (
    SEVERITIES,
    back,
    can_write,
    choice,
    environment_choice,
    flag,
    moment,
    validated,
)
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)

LIMIT = 500
STATES = ("open", "triaged", "resolved")
TRIAGE = ("fixed", "false_positive", "accepted_risk")
CWE = re.compile(r"^CWE-(\d{1,6})$")
DONE = {
    "triaged": "Triage saved. Later scans carry it forward.",
    "imported": "Report imported.",
}


def _scans(session: Session, environment: str | None) -> list[SecurityScanRead]:
    return security.list_scans(
        session, filters=SecurityScanFilter(environment=environment), limit=100
    ).items


def _upload_limits(session: Session) -> dict[str, int | None]:
    return {e: max_upload_bytes(session, name=e) for e in ENVIRONMENTS}


def compliance_chart(scans: list[SecurityScanRead], now: datetime) -> Markup | None:
    """The compliance score of each completed scan, one line per environment."""
    by_env: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for scan in scans:
        score = scan.summary.compliance_score if scan.summary else None
        if scan.status == "completed" and score is not None:
            by_env[scan.environment].append((scan.completed_at or scan.started_at, score))
    moments = [t for points in by_env.values() for t, _ in points]
    if not moments:
        return None
    until = now
    since = min(*moments, until - timedelta(hours=1))
    return charts.time_chart(
        [charts.Series(env, by_env[env]) for env in ENVIRONMENTS if env in by_env],
        since=since,
        until=until,
        title="Compliance score after each scan (100 = no open, untriaged findings)",
        unit="score",
        y_min=0,
        y_max=100,
    )


@router.get("/security")
async def security_page(
    request: Request,
    db: RequestDbDep,
    principal: Viewer,
    environment: str | None = None,
    severity: str | None = None,
    type: str | None = None,
    tool: Annotated[str | None, Query(max_length=128)] = None,
    status: str | None = "open",
    overdue: str | None = None,
    done: str | None = None,
    scan: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    env = environment_choice(environment)
    picked_severity = choice(severity, SEVERITIES, "severity")
    picked_type = choice(type, SCAN_TYPES, "type")
    # "any" is the select's explicit choice; an absent status means the open ones.
    state = None if status == "any" else choice(status, STATES, "status")
    late = flag(overdue, "overdue")
    page = await db.run(
        security.findings_page,
        environment=env,
        severity=picked_severity,
        status=state,
        overdue=late,
        scan_type=picked_type,
        tool=tool or None,
        cursor=cursor,
        limit=LIMIT,
    )
    filters = {
        "environment": env,
        "severity": picked_severity,
        "type": picked_type,
        "tool": tool or "",
        "status": status or "any",
        "overdue": overdue or "",
    }
    # The same filters, from the last finding shown on: every finding is one click further.
    next_url = (
        "/security?"
        + urlencode({**{k: v for k, v in filters.items() if v}, "cursor": page.next_cursor})
        if page.next_cursor
        else None
    )
    scans = await db.run(_scans, env)
    imported = None
    if scan is not None and done == "imported":
        # A stale confirmation link should still show the list, just without the summary.
        with contextlib.suppress(NotFound):
            imported = await db.run(security.get_scan, scan_id=scan)
    return render(
        request,
        "security.html",
        principal=principal,
        notice=DONE.get(done or ""),
        imported=imported,
        filters=filters,
        findings=page.items,
        next_url=next_url,
        limit=LIMIT,
        scans=scans[:20],
        chart=compliance_chart(scans, utcnow()),
        environments=ENVIRONMENTS,
        severities=SEVERITIES,
        scan_types=SCAN_TYPES,
        states=STATES,
        can_write=can_write(principal),
        upload_limits=await db.run(_upload_limits),
    )


@router.get("/security/findings/{finding_id}")
async def finding_page(
    request: Request,
    finding_id: uuid.UUID,
    db: RequestDbDep,
    principal: Viewer,
    done: str | None = None,
) -> Response:
    finding = await db.run(security.current_finding, finding_id=finding_id)
    cwe = CWE.match(finding["cwe_id"] or "")
    return render(
        request,
        "finding.html",
        principal=principal,
        notice=DONE.get(done or ""),
        f=finding,
        requested=finding_id,
        cwe_url=f"https://cwe.mitre.org/data/definitions/{cwe.group(1)}.html" if cwe else None,
        now=utcnow(),
        triage_choices=TRIAGE,
        can_write=can_write(principal),
    )


@router.post("/security/findings/{finding_id}/triage")
def triage_finding(
    request: Request,
    finding_id: uuid.UUID,
    db: DbSession,
    principal: DeployerForm,
    status: Annotated[Literal["fixed", "false_positive", "accepted_risk"], Form()],
    reason: Annotated[str, Form(max_length=2000)],
    expires: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    expires_at = moment(expires, "expires")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput(
            "expires must be in the future", errors=[{"loc": ["form", "expires"], "msg": "past"}]
        )
    body = validated(Triage, {"status": status, "reason": reason.strip(), "expires_at": expires_at})
    security.triage(
        db,
        finding_id=finding_id,
        status=body.status,
        reason=body.reason,
        expires_at=body.expires_at,
        actor=principal.name,
        audit_context=audit_context_of(request, principal),
    )
    return back(f"/security/findings/{finding_id}", "triaged")


@router.post("/security/import")
def import_report(
    request: Request,
    principal: UnlockedDeployerForm,
    file: Annotated[UploadFile, File()],
    environment: Annotated[str, Form(max_length=40)],
    type: Annotated[str, Form(max_length=40)] = "",
    tool: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    env = environment_choice(environment)
    if env is None:
        raise InvalidInput(
            "choose the environment the report is about",
            errors=[{"loc": ["form", "environment"], "msg": "required"}],
        )
    engine = request.app.state.engine
    # No request transaction: parsing a large report takes seconds, and on SQLite a write
    # transaction open meanwhile would hold the only write lock (as the API's import does).
    with transaction(engine, write=False) as db:
        limit = max_upload_bytes(db, name=env)
    data = file.file.read(limit + 1 if limit else -1)
    if limit and len(data) > limit:
        raise PayloadTooLarge(f"the report is larger than {env}'s max_file_size_mb")
    if not data:
        raise InvalidInput(
            "the file is empty", errors=[{"loc": ["form", "file"], "msg": "empty file"}]
        )
    scan_type = choice(type, SCAN_TYPES, "type")
    report = security.parse(data, scan_type=scan_type, tool=tool.strip() or None)
    result = security.import_report(
        ingest.caller_opener(engine, role=principal.role, user_id=principal.name),
        environment=env,
        report=report,
        audit_context=audit_context_of(request, principal),
    )
    return back("/security", "imported", environment=env, scan=str(result["scan"]["id"]))
