"""Security figure: importing a SARIF report, twice (the second run matches known findings)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.support import (
    driver_load,
)
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments.service import seed_environments


def _sarif(n: int, seed: int) -> bytes:
    results = [
        {
            "ruleId": f"rule-{i % 50}",
            "level": ("error", "warning", "note")[i % 3],
            "message": {"text": f"finding {i}"},
            "partialFingerprints": {
                "primaryLocationLineHash": f"{seed}-{i}" if i % 10 == 0 else f"h{i}"
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f"src/module_{i % 400}.py"},
                        "region": {"startLine": 1 + i % 500},
                    }
                }
            ],
        }
        for i in range(n)
    ]
    rules = [{"id": f"rule-{r}", "properties": {"tags": ["security"]}} for r in range(50)]
    return json.dumps(
        {
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "semgrep", "rules": rules}}, "results": results}],
        }
    ).encode()


def bench_security_import(url: str, backend: str, n: int) -> list[dict[str, Any]]:
    """A SARIF file with ``n`` results imported twice (the second matched against the first:
    fingerprints, resolve, reopen) against json.load + the driver writing the same rows."""
    from shipboard.security import ingest
    from shipboard.security.service import import_report, parse

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
    first, second = _sarif(n, 1), _sarif(n, 2)
    times = []
    for data in (first, second):
        started = time.perf_counter()
        import_report(
            ingest.system_opener(engine),
            environment="production",
            report=parse(data, scan_type=None, tool=None),
            audit_context=None,
        )
        times.append(time.perf_counter() - started)

    def baseline() -> None:
        document = json.loads(first)
        scan_id = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        with system_transaction(engine) as s:
            s.execute(
                sa.text(
                    "INSERT INTO security_scans (id, type, environment, status, started_at) "
                    "VALUES (:id, 'sast', 'production', 'completed', :now)"
                ),
                {"id": scan_id, "now": now},
            )
        rows = [
            (
                str(uuid.uuid4()),
                scan_id,
                "high",
                r["message"]["text"],
                r["message"]["text"],
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                False,
                now,
            )
            for r in document["runs"][0]["results"]
        ]
        driver_load(
            engine,
            backend,
            "security_findings",
            "id, scan_id, severity, title, description, location, resolved, created_at",
            rows,
        )

    started = time.perf_counter()
    baseline()
    base = time.perf_counter() - started
    engine.dispose()
    return [
        {
            "name": f"SARIF import, {label} ({n:,} results)",
            "backend": backend,
            "value": round(t, 2),
            "unit": "s",
            "baseline": round(base, 2),
            "ratio": round(t / base, 2),
            "target": "<= 3x the baseline",
        }
        for label, t in (("first", times[0]), ("re-import", times[1]))
    ]
