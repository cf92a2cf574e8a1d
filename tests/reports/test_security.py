"""SLA and overdue findings, the security report in every format, and `shipboard scan import`."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import subprocess
import sys

from sqlalchemy.engine import Engine

from shipboard.reports.schemas import SecurityReport
from tests.support.factories import age_finding_identities, created, current_findings, import_report
from tests.support.live import Clients
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.paths import SRC

FIXTURES = FIXTURES_ROOT / "security"


def test_sla_marks_overdue_findings_per_severity(clients: Clients, engine: Engine) -> None:
    with clients.as_role("deployer") as client:
        # high 3, medium 1, low 1
        created(import_report(client, "npm_audit/dd_npm6_many_vuln.json"))
        assert not any(f["overdue"] for f in current_findings(client))
        # past high's 30 days, within medium's 90 and low's 120
        age_finding_identities(engine, days=40)
        overdue = current_findings(client, overdue="true")
    assert sorted(f["severity"] for f in overdue) == ["high", "high", "high"]
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"security": {"sla_days": {"high": 60}}}},
        )
        assert current_findings(admin, overdue="true") == []


def test_security_report_in_every_format(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        created(import_report(client, "sarif/codeql-2.5.4__dd_codeQL-output.sarif"))
        created(import_report(client, "pip_audit/dd_many_vulns_new.json"))
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
    SecurityReport.model_validate(report)  # what OpenAPI says is what is sent
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


HOSTILE_CELLS = ['=HYPERLINK("http://x.test","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_security_report_csv_neutralises_formula_cells(clients: Clients) -> None:
    """A finding's title and location are written by whoever wrote the scanned code: a cell
    that a spreadsheet would evaluate is quoted (OWASP's CSV injection guidance)."""
    results = [
        {
            "ruleId": cell,
            "level": "error",
            "message": {"text": cell},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": cell}}}],
        }
        for cell in HOSTILE_CELLS
    ]
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": results}]}
    with clients.as_role("deployer") as client:
        imported = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("x.sarif", json.dumps(sarif).encode(), "application/json")},
            data={"environment": "staging"},
        )
        assert imported.status_code == 201, imported.text
        as_csv = client.get(
            "/api/v1/reports/security", params={"environment": "staging", "format": "csv"}
        ).text
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert sorted(row["title"] for row in rows) == sorted("'" + cell for cell in HOSTILE_CELLS)
    assert all(row["location"].startswith("'") for row in rows)


def test_every_csv_export_neutralises_formula_cells() -> None:
    """Every CSV writer goes through one helper: no module writes CSV with ``csv`` directly,
    and each report's CSV quotes a hostile name while numbers stay numbers."""
    from shipboard.reports import documents, monitoring

    src = SRC
    direct = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "csvsafe.py"
        and any(
            isinstance(node, ast.Attribute)
            and node.attr in {"writer", "DictWriter"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "csv"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert direct == []
    metric = monitoring.MetricSummary(
        name="=cmd|' /C calc'!A0",
        points=1,
        min=-1.5,
        max=1,
        avg=0,
        p95=0,
        trend_per_day=None,
        trend_p_value=None,
        trend="flat",
        anomalies=0,
    )
    report = monitoring.MonitoringReport.model_construct(metrics=[metric])
    row = next(csv.DictReader(io.StringIO(documents.to_csv("monitoring", report))))
    assert (row["name"], row["min"]) == ("'=cmd|' /C calc'!A0", "-1.5")
    bench = {"name": "@evil", "tags": {"k": "v"}, "change_pct": -3.5}
    text = documents.to_csv("performance", {"benchmarks": [bench]})
    row = next(csv.DictReader(io.StringIO(text)))
    assert (row["name"], row["change_pct"]) == ("'@evil", "-3.5")


def test_uploaded_report_text_with_nul_is_stored_with_a_replacement_character(
    clients: Clients,
) -> None:
    """A scanner's report is a file, not typed input: a NUL in a finding (PostgreSQL cannot
    store one) becomes U+FFFD instead of failing the import."""
    result = {
        "ruleId": "nul-rule",
        "level": "error",
        "message": {"text": "bad\u0000title"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a\u0000.py"}}}],
    }
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": [result]}]}
    with clients.as_role("deployer") as client:
        imported = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("x.sarif", json.dumps(sarif).encode(), "application/json")},
            data={"environment": "staging"},
        )
        assert imported.status_code == 201, imported.text
        (finding,) = current_findings(client)
    assert "\x00" not in json.dumps(finding)
    assert finding["location"] == "a\ufffd.py"
