"""`shipboard scan import` and `shipboard report security`: through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shipboard.client import ShipboardClient
from shipboard.core.errors import InvalidInput

app = typer.Typer(help="Security scans (through the API).", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("import")
def import_report(
    file: Path,
    environment: Annotated[str, typer.Option("--env", help="Environment the scan belongs to")],
    scan_type: Annotated[
        str | None,
        typer.Option("--type", help="dependency, sast, container or iac (else inferred)"),
    ] = None,
    tool: Annotated[str | None, typer.Option(help="Override the tool name in the report")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a SARIF or native scanner report; prints what changed."""
    if not file.is_file():
        raise InvalidInput(f"{file} is not a file")
    form = {"environment": environment}
    if scan_type:
        form["type"] = scan_type
    if tool:
        form["tool"] = tool
    with ShipboardClient.from_settings() as client, file.open("rb") as handle:
        result = client.request(
            "POST", "/api/v1/security/scans/import", files={"file": (file.name, handle)}, data=form
        )
    if as_json:
        print(json.dumps(result))
        return
    summary = result["scan"]["summary"] or {}
    table = Table(
        "tool", "type", "findings", "new", "resolved", "reopened", "critical", "high", "score"
    )
    table.add_row(
        result["tool"],
        result["scan"]["type"],
        str(result["findings"]),
        str(result["new"]),
        str(result["resolved"]),
        str(result["reopened"]),
        str(summary.get("critical_findings", 0)),
        str(summary.get("high_findings", 0)),
        f"{summary.get('compliance_score', 0):g}",
    )
    out.print(table)


def security_report(
    environment: Annotated[str, typer.Option("--env")],
    fmt: Annotated[str, typer.Option("--format", help="json, csv, html or sarif")] = "table",
) -> None:
    """Open findings by severity, overdue, time to resolve, top CWEs (or the raw format)."""
    with ShipboardClient.from_settings() as client:
        if fmt in ("csv", "html", "sarif", "json"):
            response = client._http.get(
                "/api/v1/reports/security", params={"environment": environment, "format": fmt}
            )
            if response.status_code >= 400:
                raise InvalidInput(f"HTTP {response.status_code}: {response.text[:300]}")
            print(response.text)
            return
        report = client.get("/api/v1/reports/security", params={"environment": environment})
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["open_by_severity"].items())) or "none"
    out.print(
        f"{environment}: {report['open']} open ({counts}), {report['overdue']} overdue, "
        f"{report['triaged']} triaged"
    )
    table = Table("severity", "title", "location", "due")
    for finding in report["findings"][:50]:
        table.add_row(
            finding["severity"],
            finding["title"][:80],
            finding["location"] or "",
            ("OVERDUE " if finding["overdue"] else "") + finding["due_at"][:10],
        )
    out.print(table)
