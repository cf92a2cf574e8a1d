"""`shipboard metrics …`: through the API."""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from shipboard.client import PROGRESS_MIN_BYTES, Client, progress_bar, progress_wanted
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console
from shipboard.core.time import parse_duration

app = typer.Typer(help="Push and query monitoring metrics (through the API).", no_args_is_help=True)
out = console(soft_wrap=True)
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low or 1.0
    return "".join(
        BARS[min(len(BARS) - 1, int((v - low) / span * (len(BARS) - 1) + 0.5))] for v in values
    )


@app.command("push")
def push(
    environment: Annotated[str, typer.Option("--env", help="Environment of the points")],
    points: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME=VALUE]...",
            help="Points measured now, like http_p95_ms=231; without any, --file is read",
            show_default=False,
        ),
    ] = None,
    source: Annotated[str, typer.Option(help="e.g. application, infrastructure")] = "application",
    file: Annotated[
        str | None,
        typer.Option(help="JSON lines file of {name, value, timestamp?, tags?}; - for stdin"),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for every NAME=VALUE point; repeatable")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Retry-safe batch key")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Push points given as NAME=VALUE, or JSON lines from a file or stdin (batches of 10,000)."""
    if points and file:
        raise InvalidInput("give NAME=VALUE points or --file, not both")
    with Client.from_settings() as client:
        if points:
            tags = _pairs(tag or [], "--tag")
            batch = [
                {"name": name, "value": value, "environment": environment, "source": source}
                | ({"tags": tags} if tags else {})
                for name, value in _points(points)
            ]
            total = _send(client, batch, idempotency_key, 0)
        else:
            total = _push_lines(client, file or "-", environment, source, idempotency_key, as_json)
    if as_json:
        print(json.dumps({"accepted": total}))
    else:
        out.print(f"accepted {total} point(s)")


def _points(items: list[str]) -> list[tuple[str, float]]:
    parsed = []
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise InvalidInput(f"points are NAME=NUMBER, got {item!r}")
        parsed.append((name, value))
    return parsed


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} takes KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def _push_lines(
    client: Client, file: str, environment: str, source: str, key: str | None, as_json: bool
) -> int:
    stream = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    size = None if file == "-" else os.fstat(stream.fileno()).st_size
    # Only a big file is worth a bar; stdin's size is unknown until it ends.
    show = progress_wanted(as_json=as_json) and size is not None and size >= PROGRESS_MIN_BYTES
    points: list[dict[str, Any]] = []
    total = 0
    with stream, progress_bar(size, f"pushing {file}", enabled=show) as advance:
        for number, line in enumerate(stream, 1):
            advance(len(line.encode()))
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"line {number} is not JSON: {exc.msg}") from exc
            points.append({"environment": environment, "source": source, **item})
            if len(points) == 10_000:
                total += _send(client, points, key, total)
                points = []
        if points:
            total += _send(client, points, key, total)
    return total


def _send(client: Client, points: list[dict[str, Any]], key: str | None, offset: int) -> int:
    return client.push_metrics(points, idempotency_key=f"{key}-{offset}" if key else None)


@app.command("query")
def query(
    name: str,
    environment: Annotated[str | None, typer.Option("--env")] = None,
    since: Annotated[str, typer.Option(help="How far back, like 1h or 7d")] = "1h",
    step: Annotated[int | None, typer.Option(help="Bucket width in seconds")] = None,
    agg: Annotated[str, typer.Option(help="avg, min, max, sum, count, p50, p95, p99")] = "avg",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable")] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="store (SHIPBOARD_PROMETHEUS_URL's) or embedded (Shipboard's database); "
            "default: the server's choice"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print a series as a table with a sparkline."""
    until = datetime.now(UTC)
    try:
        start = until - parse_duration(since)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    params: dict[str, Any] = {
        "name": name,
        "since": start.isoformat(),
        "until": until.isoformat(),
        "agg": agg,
    }
    if environment:
        params["environment"] = environment
    if step:
        params["step"] = step
    if source:
        params["source"] = source
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--tag takes KEY=VALUE, got {item!r}")
        params[f"tag.{key}"] = value
    with Client.from_settings() as client:
        series = client.get("/api/v1/metrics/series", params=params)
    if as_json:
        print(json.dumps(series))
        return
    values = [v for _, v in series["points"]]
    where = "the metrics store" if series.get("source") == "store" else "Shipboard's database"
    out.print(f"{name} {agg} every {series['step_s']} s, from {where}: {sparkline(values)}")
    table = Table("time", agg)
    for stamp, value in series["points"][-20:]:
        table.add_row(stamp[:19], f"{value:.6g}")
    out.print(table)
