"""`shipboard perf …` and `shipboard report dora|performance`: through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shipboard.client import ShipboardClient
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import console

app = typer.Typer(help="Benchmark results and regressions (through the API).", no_args_is_help=True)
out = console(soft_wrap=True)
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on standard output, for scripts.")
]
Format = Annotated[str, typer.Option("--format", help="table, json or csv")]


def _num(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


@app.command("import")
def import_results(
    file: Annotated[Path, typer.Argument(help="pytest-benchmark JSON, k6 summary export, or CSV")],
    environment: Annotated[str, typer.Option("--env", help="Environment the results are from")],
    version: Annotated[str | None, typer.Option(help="Version measured (tag `version`)")] = None,
    commit: Annotated[str | None, typer.Option(help="Commit measured (tag `commit`)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a results file; prints each series' verdict. Exits 1 when a regression is found,
    so a CI job can fail on it."""
    if not file.is_file():
        raise InvalidInput(f"{file} is not a file")
    form = {"environment": environment}
    if version:
        form["version"] = version
    if commit:
        form["commit_sha"] = commit
    with ShipboardClient.from_settings() as client, file.open("rb") as handle:
        result = client.request(
            "POST", "/api/v1/performance/import", files={"file": (file.name, handle)}, data=form
        )
    if as_json:
        print(json.dumps(result))
    else:
        out.print(
            f"imported {result['accepted']} result(s) from {result['format']}; "
            f"{result['regressions']} regression(s)"
        )
        table = Table("benchmark", "value", "baseline", "delta %", "p", "model", "verdict")
        for v in result["verdicts"]:
            table.add_row(
                v["name"],
                _num(v["value"]),
                _num(v["baseline"]),
                _num(v["delta_pct"], "+.1f"),
                _num(v["p_value"], ".2g"),
                v["model"],
                v["status"].replace("_", " ").upper() if v["status"] != "ok" else "ok",
            )
        out.print(table)
    if result["regressions"]:
        raise typer.Exit(1)


@app.command("regressions")
def regressions(
    environment: Annotated[str | None, typer.Option("--env")] = None,
    version: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str, typer.Option(help="open, resolved or all")] = "open",
    as_json: JsonFlag = False,
) -> None:
    """Regressions with value, baseline, delta, p-value and the model that found them."""
    params = {"status": status, "environment": environment, "version": version}
    with ShipboardClient.from_settings() as client:
        result = client.get(
            "/api/v1/performance/regressions", params={k: v for k, v in params.items() if v}
        )
    if as_json:
        print(json.dumps(result))
        return
    table = Table("environment", "benchmark", "version", "value", "baseline", "delta %", "model")
    for r in result["items"]:
        table.add_row(
            r["environment"],
            r["name"],
            r["version"] or "",
            _num(r["value"]),
            _num(r["baseline"]),
            _num(r["delta_pct"], "+.1f"),
            r["model"],
        )
    out.print(table)


def _report(path: str, params: dict[str, Any], fmt: str) -> dict[str, Any] | None:
    if fmt not in ("table", "json", "csv"):
        raise InvalidInput(f"--format must be table, json or csv, not {fmt!r}")
    params = {k: v for k, v in params.items() if v}
    with ShipboardClient.from_settings() as client:
        if fmt == "csv":
            print(client.text(path, params={**params, "format": "csv"}), end="")
            return None
        report: dict[str, Any] = client.get(path, params=params)
    if fmt == "json":
        print(json.dumps(report))
        return None
    return report


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


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
        _duration(lt["median_seconds"]),
        lt["bucket"] or "—",
        f"{lt['deployments']} deployments",
    )
    table.add_row(
        "change failure rate",
        "—" if cfr["value"] is None else f"{cfr['value']:.1%}",
        "",
        f"{cfr['failed']} of {cfr['completed']}",
    )
    table.add_row(
        "time to restore",
        _duration(ttr["median_seconds"]),
        "",
        f"{ttr['restorations']} restorations",
    )
    out.print(f"{environment}: {report['since'][:10]} to {report['until'][:10]}")
    out.print(table)


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
    table = Table("benchmark", "latest", "median", "change %", "trend", "")
    for b in report["benchmarks"]:
        table.add_row(
            b["name"],
            f"{_num(b['latest'])} {b['unit']}",
            _num(b["median"]),
            _num(b["change_pct"], "+.1f"),
            b["trend"],
            "REGRESSED" if b["regressed"] else "",
        )
    out.print(table)
