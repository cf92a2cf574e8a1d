"""`shipboard perf …`: through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shipboard.client import ShipboardClient
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console

app = typer.Typer(help="Benchmark results and regressions (through the API).", no_args_is_help=True)
out = console(soft_wrap=True)


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
