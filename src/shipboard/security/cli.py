"""`shipboard scan import|run`: through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shipboard.client import Client
from shipboard.core.errors import ShipboardError
from shipboard.core.terminal import JsonFlag, console

app = typer.Typer(help="Security scans (through the API).", no_args_is_help=True)
out = console(soft_wrap=True)


@app.command("import")
def import_report(
    file: Path,
    environment: Annotated[str, typer.Option("--env", help="Environment the scan belongs to")],
    scan_type: Annotated[
        str | None,
        typer.Option("--type", help="dependency, sast, container or iac (else inferred)"),
    ] = None,
    tool: Annotated[str | None, typer.Option(help="Override the tool name in the report")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="What was scanned (image, path, artifact); findings resolve per target. "
            "Default: what the report names (trivy's ArtifactName), else none"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a SARIF or native scanner report; prints what changed."""
    with Client.from_settings() as client:
        result = client.import_scan(
            file, environment, scan_type=scan_type, tool=tool, target=target
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


@app.command("run")
def run_scan(
    scan_type: Annotated[str, typer.Argument(help="sast, dependency, iac or container")],
    environment: Annotated[str, typer.Option("--env")],
    target: Annotated[str, typer.Option(help="Path inside SHIPBOARD_SCAN_ROOTS on the server")],
    tool: Annotated[
        str | None, typer.Option(help="bandit, semgrep, checkov, pip-audit, trivy")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result")] = 900,
    as_json: JsonFlag = False,
) -> None:
    """Ask the server to run a scanner, wait for it with a spinner, print the summary."""
    import time

    body = {"type": scan_type, "environment": environment, "target": target}
    if tool:
        body["tool"] = tool
    with Client.from_settings() as client:
        scan = client.request("POST", "/api/v1/security/scans", json=body)
        deadline = time.monotonic() + timeout
        with out.status(f"{scan_type} scan of {target} ({scan['status']})…") as spinner:
            while scan["status"] in ("pending", "running"):
                if time.monotonic() > deadline:
                    raise ShipboardError(
                        f"scan {scan['id']} still {scan['status']} after {timeout:g} s"
                    )
                time.sleep(0.5)
                scan = client.get(f"/api/v1/security/scans/{scan['id']}")
                spinner.update(f"{scan_type} scan of {target} ({scan['status']})…")
    if as_json:
        print(json.dumps(scan))
    elif scan["status"] == "failed":
        out.print(f"scan failed: {scan['error_message']}", style="bold red")
    else:
        summary = scan["summary"] or {}
        table = Table("critical", "high", "medium", "low", "total", "score", "duration")
        table.add_row(
            *(
                str(summary.get(k, 0))
                for k in (
                    "critical_findings",
                    "high_findings",
                    "medium_findings",
                    "low_findings",
                    "total_findings",
                )
            ),
            f"{summary.get('compliance_score', 0):g}",
            f"{summary.get('scan_duration_ms', 0)} ms",
        )
        out.print(table)
    raise typer.Exit(0 if scan["status"] == "completed" else 1)
