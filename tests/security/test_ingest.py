"""Issue 18 item 12: a large scan import is written in bounded chunks, each its own transaction,
so other writers keep flowing; it becomes visible all at once, or — when it fails on the way —
not at all; and two imports of the same scope never interleave."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.audit.service import AuditContext
from shipboard.auth import sessions
from shipboard.core.errors import Conflict
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction, transaction
from shipboard.security import ingest, repository, service
from shipboard.security.importers import ParsedReport
from shipboard.security.models import SecurityImport, SecurityScan
from tests.support.live import Clients

SYSTEM = AuditContext(actor="tests", actor_role="admin")
PASSWORD = "correct horse battery staple"
PROBE = {"name": "probe", "value": 1, "environment": "staging", "source": "test"}
TABLES = ("security_findings", "finding_identities", "finding_occurrences", "security_imports")


def _sarif(results: int, *, seed: int = 0, severity_level: str = "error") -> bytes:
    """A SARIF run of ``results`` distinct results in ``results`` files."""
    return json.dumps(
        {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {"driver": {"name": "semgrep", "rules": [{"id": "rule-a"}]}},
                    "results": [
                        {
                            "ruleId": "rule-a",
                            "level": severity_level,
                            "message": {"text": f"finding {i} of run {seed}"},
                            "locations": [
                                {
                                    "physicalLocation": {
                                        "artifactLocation": {"uri": f"src/file{i}.py"},
                                        "region": {"startLine": 1 + i % 50},
                                    }
                                }
                            ],
                        }
                        for i in range(results)
                    ],
                }
            ],
        }
    ).encode()


def _report(results: int, **kwargs: Any) -> ParsedReport:
    return service.parse(_sarif(results, **kwargs), scan_type=None, tool=None)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) or 0 for t in TABLES}


def _import(engine: Engine, report: ParsedReport, **kwargs: Any) -> dict[str, Any]:
    return service.import_report(
        ingest.system_opener(engine),
        environment="staging",
        report=report,
        audit_context=SYSTEM,
        **kwargs,
    )


def _current(engine: Engine) -> list[dict[str, Any]]:
    with transaction(engine, write=False) as session:
        return service.current_findings(session, environment="staging", limit=100_000)


@pytest.fixture
def fail_on_second_occurrence_chunk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The database refuses the import's second chunk of occurrences: a failure mid-way,
    after findings and identities were staged."""
    real = repository.insert_occurrences
    calls = {"n": 0}

    def failing(session: Any, rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the disk is full")
        real(session, rows)

    monkeypatch.setattr(repository, "insert_occurrences", failing)
    return


def test_a_chunked_import_matches_and_resolves_only_after_the_last_chunk(engine: Engine) -> None:
    first = _import(engine, _report(250), chunk_rows=40)
    assert (first["findings"], first["new"], first["resolved"]) == (250, 250, 0)
    assert first["scan"]["status"] == "completed"
    assert len(_current(engine)) == 250
    # The second run lacks the last 50: they are resolved, the rest seen again, none new.
    second = _import(engine, _report(200), chunk_rows=40)
    assert (second["new"], second["resolved"], second["reopened"]) == (0, 50, 0)
    states = [f["status"] for f in _current(engine)]
    assert states.count("open") == 200
    assert states.count("resolved") == 50
    third = _import(engine, _report(250), chunk_rows=40)
    assert (third["new"], third["resolved"], third["reopened"]) == (0, 0, 50)
    assert _counts(engine)["security_imports"] == 0


def test_an_import_that_fails_midway_leaves_nothing(
    engine: Engine, fail_on_second_occurrence_chunk: None
) -> None:
    with pytest.raises(RuntimeError, match="disk is full"):
        _import(engine, _report(300), chunk_rows=50)
    assert _counts(engine) == dict.fromkeys(TABLES, 0)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM security_scans")) == 0


def test_a_reimport_that_fails_midway_leaves_the_previous_state(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(engine, _report(120), chunk_rows=500)
    before, counts = _current(engine), _counts(engine)
    real = repository.insert_occurrences
    calls = {"n": 0}

    def failing(session: Any, rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the disk is full")
        real(session, rows)

    monkeypatch.setattr(repository, "insert_occurrences", failing)
    with pytest.raises(RuntimeError):
        # Half of these are new, and the 20 missing would be resolved: none of it happens.
        _import(engine, _report(200, seed=0), chunk_rows=30)
    assert _counts(engine) == counts
    assert _current(engine) == before


def test_a_requested_scan_whose_import_fails_midway_keeps_its_scan_row(
    engine: Engine, fail_on_second_occurrence_chunk: None
) -> None:
    with system_transaction(engine) as session:
        scan = SecurityScan(id=uuid.uuid4(), type="sast", environment="staging", status="running")
        repository.add(session, scan)
    with pytest.raises(RuntimeError):
        _import(engine, _report(300), chunk_rows=50, scan_id=scan.id, target="/srv/app")
    assert _counts(engine) == dict.fromkeys(TABLES, 0)
    with transaction(engine, write=False) as session:
        assert repository.get_scan(session, scan.id) is not None  # the worker marks it failed


def test_a_second_import_of_the_same_scope_is_refused_while_the_first_runs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "PAUSE_S", 0.05)
    outcome: dict[str, Any] = {}

    def first() -> None:
        outcome["first"] = _import(engine, _report(400), chunk_rows=20)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 60
    while _counts(engine)["security_findings"] == 0:
        assert time.monotonic() < deadline
        assert thread.is_alive()
        time.sleep(0.02)
    # Staged rows are not visible: no current finding, no finding of the running scan.
    assert _current(engine) == []
    with transaction(engine, write=False) as session:
        running = session.scalars(sa.select(SecurityScan)).one()
        assert running.status == "running"
        page = service.list_findings(
            session, filters=service.SecurityFindingFilter(scan_id=running.id)
        )
        assert page.items == []
    with pytest.raises(Conflict, match="in progress"):
        _import(engine, _report(10))
    # Another target is another scope: it goes ahead meanwhile.
    other = _import(engine, _report(10), target="other-image")
    assert other["new"] == 10
    thread.join(timeout=120)
    assert outcome["first"]["new"] == 400
    again = _import(engine, _report(400))
    assert (again["new"], again["resolved"]) == (0, 0)


def test_an_import_whose_process_died_is_discarded_when_its_lease_lapses(engine: Engine) -> None:
    report = _report(60)
    key = ingest.scope_key("staging", report.scan_type, report.tool, "")
    # A process staged half an import and died: its claim's lease has lapsed.
    dead = SecurityScan(id=uuid.uuid4(), type="sast", environment="staging", status="running")
    opener = ingest.system_opener(engine)
    with opener(True) as session:
        repository.add(session, dead)
        ingest.claim(session, key=key, scan=dead, lease=timedelta(seconds=-1))
    plan = ingest.plan_for(
        opener, report, environment="staging", target="", scan_id=dead.id, now=utcnow()
    )
    ingest.stage(
        opener, key=key, scan_id=dead.id, plan=plan, chunk_rows=25, lease=timedelta(seconds=-1)
    )
    assert _counts(engine)["security_findings"] == 60
    assert ingest.reap_abandoned(opener) == 1
    assert _counts(engine) == dict.fromkeys(TABLES, 0)
    with transaction(engine, write=False) as session:
        scan = repository.get_scan(session, dead.id)
        assert scan is not None
        assert scan.status == "failed"
        assert "lease lapsed" in (scan.error_message or "")
    assert _import(engine, report)["new"] == 60


def test_the_api_answers_409_while_an_import_of_the_same_scope_runs(
    clients: Clients, engine: Engine
) -> None:
    data = _sarif(5)
    report = service.parse(data, scan_type=None, tool=None)
    with system_transaction(engine) as session:
        holder = SecurityScan(id=uuid.uuid4(), type="sast", environment="staging", status="running")
        repository.add(session, holder)
        now = utcnow()
        session.add(
            SecurityImport(
                scope=ingest.scope_key("staging", report.scan_type, report.tool, ""),
                scan_id=holder.id,
                started_at=now,
                expires_at=now + timedelta(minutes=5),
            )
        )
    with clients.as_role("deployer") as client:
        response = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("r.sarif", data, "application/json")},
            data={"environment": "staging"},
        )
        assert response.status_code == 409, response.text
        assert "in progress" in response.json()["detail"]
        response = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("r.sarif", data, "application/json")},
            data={"environment": "staging", "target": "elsewhere"},
        )
        assert response.status_code == 201, response.text


# Another process that takes SQLite's write lock every 10 ms until told to stop, and prints the
# longest it waited: a process of its own, so that what it measures is the lock, not the GIL.
PROBE_WRITER = """
import json, os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
waits = []
while not os.path.exists(sys.argv[2]):
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    waits.append(time.perf_counter() - started)
    conn.execute("COMMIT")
    time.sleep(0.01)
print(json.dumps({"longest": max(waits), "writes": len(waits)}))
"""


def test_other_writers_wait_for_a_chunk_not_for_the_whole_import(
    engine: Engine, backend: str, tmp_path: Any
) -> None:
    """Before, the whole write was one transaction: on SQLite another writer waited for all of
    it (14 s at 100,000 results, 2.5 s at 15,000). Now it waits for a chunk, or the flip."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    report = _report(15_000)
    stop = tmp_path / "stop"
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE_WRITER, str(engine.url.database), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)
        started = time.perf_counter()
        result = _import(engine, report)
        import_s = time.perf_counter() - started
    finally:
        stop.touch()
        out, _ = probe.communicate(timeout=120)
    assert result["new"] == 15_000
    waited = json.loads(out)
    print(f"write {import_s:.2f} s, another writer waited at most {waited['longest']:.3f} s")
    assert waited["writes"] >= 10
    assert waited["longest"] < 0.25 * import_s


def test_the_web_upload_parses_before_it_takes_the_write_lock(
    clients: Clients, engine: Engine, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's upload parses with no transaction open, as the API's import does: a write
    from elsewhere meanwhile gets SQLite's lock at once. Before, the form's request held it."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    database = engine.url.database
    assert database
    seen: dict[str, Any] = {}
    real_parse = service.parse

    def parse_while_another_writes(data: bytes, **kwargs: Any) -> ParsedReport:
        other = sqlite3.connect(database, timeout=2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" after 2 s if held
            other.execute("ROLLBACK")
            seen["wrote"] = True
        finally:
            other.close()
        return real_parse(data, **kwargs)

    monkeypatch.setattr(service, "parse", parse_while_another_writes)
    with system_transaction(engine) as session:
        sessions.set_password(
            session, name="deployer-user", password=PASSWORD, audit_context=SYSTEM
        )
    with httpx.Client(base_url=clients.server.base_url, timeout=30) as browser:
        form = browser.get("/login")
        login_token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert login_token
        signed = browser.post(
            "/login",
            data={"username": "deployer-user", "password": PASSWORD, "csrf_token": login_token[1]},
        )
        assert signed.status_code == 303, signed.text
        token = re.search(r'data-csrf="([^"]*)"', browser.get("/security").text)
        assert token
        response = browser.post(
            "/security/import",
            data={"environment": "staging", "csrf_token": token[1]},
            files={"file": ("r.sarif", _sarif(5), "application/json")},
        )
        assert response.status_code == 303, response.text
    assert seen == {"wrote": True}
    assert len(_current(engine)) == 5


def test_two_claims_racing_for_one_scope_let_exactly_one_through(engine: Engine) -> None:
    """On PostgreSQL the second claim cannot see the first's uncommitted row: its insert waits
    for the first to commit, then fails on the key, and is a Conflict, not a 500."""
    opener = ingest.system_opener(engine)
    key = ingest.scope_key("staging", "sast", "semgrep", "race")
    scans = [
        SecurityScan(id=uuid.uuid4(), type="sast", environment="staging", status="running")
        for _ in range(2)
    ]
    with opener(True) as session:
        for scan in scans:
            repository.add(session, scan)
    second: dict[str, Any] = {}

    def claim_second() -> None:
        try:
            with opener(True) as session:
                ingest.claim(session, key=key, scan=scans[1])
            second["outcome"] = "claimed"
        except Conflict:
            second["outcome"] = "conflict"

    with opener(True) as session:
        ingest.claim(session, key=key, scan=scans[0])
        racer = threading.Thread(target=claim_second)
        racer.start()
        time.sleep(0.5)  # the second is waiting (SQLite's lock, PostgreSQL's key)
    racer.join(timeout=60)
    assert second == {"outcome": "conflict"}
    with transaction(engine, write=False) as session:
        held = repository.get_import(session, key)
        assert held is not None
        assert held.scan_id == scans[0].id
