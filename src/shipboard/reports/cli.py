"""`shipboard report dora|security|monitoring|performance`: through the API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from shipboard.client import Client
from shipboard.core import formatting
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console

app = typer.Typer(help="Reports (through the API).", no_args_is_help=True)
out = console(soft_wrap=True)
Format = Annotated[str, typer.Option("--format", help="table, json or csv")]


def _num(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def _report(path: str, params: dict[str, Any], fmt: str) -> dict[str, Any] | None:
    if fmt not in ("table", "json", "csv"):
        raise InvalidInput(f"--format must be table, json or csv, not {fmt!r}")
    params = {k: v for k, v in params.items() if v}
    with Client.from_settings() as client:
        if fmt == "csv":
            print(client.text(path, params={**params, "format": "csv"}), end="")
            return None
        report: dict[str, Any] = client.get(path, params=params)
    if fmt == "json":
        print(json.dumps(report))
        return None
    return report


@app.command("monitoring")
def monitoring_report(
    environment: Annotated[str, typer.Option("--env")],
    period: Annotated[str, typer.Option(help="Like 7d")] = "7d",
    as_json: JsonFlag = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
) -> None:
    """Per metric range, trend and anomalies; alerts and time to resolve."""
    params = {"environment": environment, "period": period}
    with Client.from_settings() as client:
        if csv:
            csv_text = client.text("/api/v1/reports/monitoring", params={**params, "format": "csv"})
            print(csv_text, end="")
            return
        report = client.get("/api/v1/reports/monitoring", params=params)
    if as_json:
        print(json.dumps(report))
        return
    table = Table("metric", "points", "min", "avg", "p95", "max", "trend/day", "anomalies")
    for m in report["metrics"]:
        trend = (
            f"{m['trend_per_day']:+.3g} ({m['trend']})" if m["trend_per_day"] is not None else "-"
        )
        table.add_row(
            m["name"],
            str(m["points"]),
            f"{m['min']:.4g}",
            f"{m['avg']:.4g}",
            f"{m['p95']:.4g}",
            f"{m['max']:.4g}",
            trend,
            str(m["anomalies"]),
        )
    out.print(table)
    alerts = report["alerts"]
    mttr = alerts["median_time_to_resolve_s"]
    out.print(
        f"alerts fired: {alerts['fired']}, resolved: {alerts['resolved']}, median time to resolve: "
        + formatting.duration(mttr)
    )


@app.command("security")
def security_report(
    environment: Annotated[str, typer.Option("--env")],
    fmt: Annotated[str, typer.Option("--format", help="json, csv, html or sarif")] = "table",
) -> None:
    """Open findings by severity, overdue, time to resolve, top CWEs (or the raw format)."""
    with Client.from_settings() as client:
        if fmt in ("csv", "html", "sarif", "json"):
            print(
                client.text(
                    "/api/v1/reports/security", params={"environment": environment, "format": fmt}
                )
            )
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


@app.command("dora")
def dora_report(
    environment: Annotated[str, typer.Option("--env")] = "production",
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 with offset; default: 90 days ago")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 with offset; default now")] = None,
    fmt: Format = "table",
) -> None:
    """Deployment frequency, lead time, change failure rate and time to restore."""
    report = _report(
        "/api/v1/reports/dora",
        {"environment": environment, "since": since, "until": until},
        fmt,
    )
    if report is None:
        return
    df, lt = report["deployment_frequency"], report["lead_time_for_changes"]
    cfr, ttr = report["change_failure_rate"], report["time_to_restore"]
    table = Table("metric", "value", "bucket", "based on")
    table.add_row(
        "deployment frequency",
        f"{df['per_day']:.2f}/day",
        df["bucket"] or "—",
        f"{df['deployments']} deployments",
    )
    table.add_row(
        "lead time for changes",
        formatting.duration(lt["median_seconds"]),
        lt["bucket"] or "—",
        f"{lt['deployments']} deployments",
    )
    table.add_row(
        "change failure rate",
        formatting.percent(cfr["value"]),
        "",
        f"{cfr['failed']} of {cfr['completed']}",
    )
    table.add_row(
        "time to restore",
        formatting.duration(ttr["median_seconds"]),
        "",
        f"{ttr['restorations']} restorations",
    )
    out.print(f"{environment}: {report['since'][:10]} to {report['until'][:10]}")
    out.print(table)


@app.command("performance")
def performance_report(
    environment: Annotated[str, typer.Option("--env")],
    period: Annotated[str, typer.Option(help="Like 30d")] = "30d",
    fmt: Format = "table",
) -> None:
    """Per benchmark: latest, median, change and trend over the period; open regressions."""
    report = _report(
        "/api/v1/reports/performance", {"environment": environment, "period": period}, fmt
    )
    if report is None:
        return
    out.print(
        f"{environment}: {len(report['benchmarks'])} benchmark series, "
        f"{report['open_regressions']} open regression(s)"
    )
    table = Table("benchmark", "latest", "median", "change", "trend", "")
    for b in report["benchmarks"]:
        table.add_row(
            b["name"],
            f"{_num(b['latest'])} {b['unit']}",
            _num(b["median"]),
            formatting.percent_change(b["change_pct"]),
            b["trend"],
            "REGRESSED" if b["regressed"] else "",
        )
    out.print(table)
