"""SLA and overdue findings, the security report in every format, and `shipboard scan import`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Clients
from tests.test_security_import_api import _current, _import, _ok

FIXTURES = Path(__file__).parent / "fixtures" / "security"


def _age_identities(engine: Engine, days: int) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=days)
    with engine.begin() as conn:
        value = (
            long_ago.isoformat(timespec="microseconds")
            if engine.dialect.name == "sqlite"
            else long_ago
        )
        conn.execute(sa.text("UPDATE finding_identities SET first_seen_at = :t"), {"t": value})


def test_sla_marks_overdue_findings_per_severity(clients: Clients, engine: Engine) -> None:
    with clients.as_role("deployer") as client:
        _ok(_import(client, "npm_audit/dd_npm6_many_vuln.json"))  # high 3, medium 1, low 1
        assert not any(f["overdue"] for f in _current(client))
        _age_identities(engine, days=40)  # past high's 30 days, within medium's 90 and low's 120
        overdue = _current(client, overdue="true")
    assert sorted(f["severity"] for f in overdue) == ["high", "high", "high"]
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"security": {"sla_days": {"high": 60}}}},
        )
        assert _current(admin, overdue="true") == []


def test_security_report_in_every_format(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        _ok(_import(client, "sarif/codeql-2.5.4__dd_codeQL-output.sarif"))
        _ok(_import(client, "pip_audit/dd_many_vulns_new.json"))
        report = client.get("/api/v1/reports/security", params={"environment": "staging"}).json()
        as_csv = client.get(
            "/api/v1/reports/security", params={"environment": "staging", "format": "csv"}
        )
        as_html = client.get(
            "/api/v1/reports/security", params={"environment": "staging", "format": "html"}
        )
        sarif = client.get(
            "/api/v1/reports/security", params={"environment": "staging", "format": "sarif"}
        )
    assert report["open_by_severity"] == {"high": 11, "medium": 4 + 7, "low": 57}
    assert report["open_by_type"] == {"sast": 72, "dependency": 7}
    assert report["top_cwes"][0]["open"] >= report["top_cwes"][-1]["open"]
    assert len(report["score_over_time"]) == 2
    assert len(as_csv.text.strip().splitlines()) == 1 + 79
    assert as_html.headers["content-type"].startswith("text/html")
    assert "Security report" in as_html.text
    log = sarif.json()
    assert log["version"] == "2.1.0"
    assert sum(len(run["results"]) for run in log["runs"]) == 79
    # Shipboard reads its own SARIF back: the same findings, the same severities.
    from shipboard.security.importers import parse_report

    again = parse_report(sarif.content)
    assert len(again.findings) == 79
    assert sorted(f.severity for f in again.findings).count("high") == 11


def test_scan_import_cli(clients: Clients) -> None:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["service"],
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipboard",
            "scan",
            "import",
            str(FIXTURES / "bandit" / "dd_many_vulns.json"),
            "--env",
            "staging",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["tool"], body["results"]) == ("bandit", 214)
    bad = subprocess.run(
        [sys.executable, "-m", "shipboard", "scan", "import", "/etc/hostname", "--env", "staging"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    assert "expected SARIF" in bad.stderr
