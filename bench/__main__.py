"""`make bench`: each figure beside a baseline measured in the same run, as a ratio.

The machine is small and shared, so absolute numbers drift; the ratio to a baseline taken
seconds apart on the same database is what to compare between runs.

Figures (docs/benchmarks.md has the table of baselines and targets): metric ingest through
the service layer, through ``POST /api/v1/metrics`` and OTLP; deployment overhead; log
append; SARIF import twice; and against a real VictoriaMetrics (``store-*``): ingest forwarded
by remote write, a series read from the store, a PromQL watch check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.deployments import (
    bench_deployment_list,
    bench_deployment_overhead,
    bench_log_append,
    bench_sse_latency,
)
from bench.ingest import bench_http_ingest, bench_ingest, bench_memory
from bench.security import bench_security_import
from bench.series import bench_series_query
from bench.store import bench_store_analysis, bench_store_ingest, bench_store_series
from bench.support import PG_URL, machine_line, pg_database


@dataclass(frozen=True)
class Sizes:
    points: int
    repeats: int
    http_requests: int
    deployments: int
    log_batches: int
    sarif: int
    list_rows: int
    load_s: float
    series_small: int
    series_large: int
    series_names: int
    sse_lines: int
    memory_points: int
    store_requests: int
    store_rounds: int
    # The store-ingest figure's comparison with forwarding off: one more server start (~8 s).
    store_unforwarded: bool


# Quick: 10 names x 3 environments x 2,000 then 20,000 minutes of history (> 24 h either way).
# fmt: off
QUICK = Sizes(
    2_000, 3, 1, 5, 5, 2_000, 10_000, 3.0, 60_000, 600_000, 10, 40, 200_000, 1, 20, False
)
FULL = Sizes(
    10_000, 5, 3, 20, 20, 20_000, 100_000, 10.0, 1_000_000, 10_000_000, 100, 200, 10_000_000,
    25, 100, True,
)
# fmt: on


FIGURES = (
    "ingest", "http", "otlp", "deploy", "logs", "sarif", "list", "series", "sse", "memory",
    "store-ingest", "store-series", "store-analysis",
)  # fmt: skip


def _steps(backend: str, z: Sizes) -> list[tuple[str, str, Callable[[str], list[dict[str, Any]]]]]:
    """(figure, what it does, run on a database URL) for one backend, in order."""
    return [
        ("ingest", f"ingest of {z.points} points x {z.repeats}",
         lambda url: bench_ingest(url, backend, z.points, z.repeats)),
        ("http", "HTTP ingest, 4 clients",
         lambda url: bench_http_ingest(url, backend, 10_000, z.http_requests)),
        ("otlp", "OTLP ingest, 4 clients",
         lambda url: bench_http_ingest(url, backend, 10_000, z.http_requests, otlp=True)),
        ("deploy", f"{z.deployments} deployments",
         lambda url: bench_deployment_overhead(url, backend, z.deployments)),
        ("logs", "log append", lambda url: bench_log_append(url, backend, z.log_batches)),
        ("sarif", f"SARIF import of {z.sarif:,} results, twice",
         lambda url: bench_security_import(url, backend, z.sarif)),
        ("list", f"deployment list over {z.list_rows:,} rows",
         lambda url: bench_deployment_list(url, backend, z.list_rows, z.load_s)),
        ("series", f"series query, {z.series_small:,} then {z.series_large:,} rows",
         lambda url: bench_series_query(
             url, backend, z.series_small, z.series_large, z.series_names)),
        ("sse", f"SSE latency over {z.sse_lines} lines",
         lambda url: bench_sse_latency(url, backend, z.sse_lines)),
        ("memory", f"server RSS while ingesting {z.memory_points:,} points",
         lambda url: bench_memory(url, backend, z.memory_points)),
        ("store-ingest", f"{4 * z.store_requests * 10_000:,} points into VictoriaMetrics",
         lambda url: bench_store_ingest(
             url, backend, z.store_requests, unforwarded=z.store_unforwarded)),
        ("store-series", "24 h series through Shipboard from VictoriaMetrics",
         lambda url: bench_store_series(url, backend, z.series_names)),
        ("store-analysis", f"PromQL watch round, median of {z.store_rounds}",
         lambda url: bench_store_analysis(url, backend, z.store_rounds)),
    ]  # fmt: skip


@contextmanager
def _fresh_database(backend: str, tmp: str, figure: str) -> Iterator[str]:
    """A database of its own for one figure, removed afterwards: a figure never inherits
    another's rows (a server started on 10 M leftover points is not the figure measured), and
    the 10 M-row databases do not pile up on disk."""
    if backend == "sqlite":
        path = Path(tmp) / f"{figure}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in Path(tmp).glob(f"{figure}.db*"):
                leftover.unlink()
        return
    pg = pg_database()
    if pg is None:
        raise RuntimeError(f"no PostgreSQL server at {PG_URL}")
    url, drop = pg
    try:
        yield url
    finally:
        drop()


def _suite(
    backend: str, z: Sizes, only: set[str], record: Callable[[dict[str, Any]], None]
) -> None:
    """Every figure (or those in ``only``) on one backend, each recorded as it is measured.
    A figure that fails is recorded as an error and the suite goes on."""
    with tempfile.TemporaryDirectory() as tmp:
        for figure, what, run in _steps(backend, z):
            if only and figure not in only:
                continue
            print(f"{backend}: {what}", file=sys.stderr, flush=True)
            try:
                with _fresh_database(backend, tmp, figure) as url:
                    rows = run(url)
            except Exception as exc:  # noqa: BLE001 -- reported in the table, the rest still runs
                rows = [{"name": f"{figure}: FAILED", "backend": backend, "error": str(exc)}]
            for row in rows:
                record(row)


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['name']:52} {r['backend']:9} ERROR {r['error']}"
    extra = "".join(
        f"  ({label} {r[key]})"
        for key, label in (
            ("overhead_ms", "overhead ms"),
            ("p99_ms", "p99 ms"),
            ("baseline_p99_ms", "baseline p99 ms"),
            ("p50_ms", "p50 ms"),
            ("growth_mib", "growth MiB"),
            ("load_tool", "load"),
            ("statuses", "statuses"),
            ("acked_s", "acked s"),
            ("baseline_acked_s", "baseline acked s"),
            ("unforwarded", "without forwarding points/s"),
            ("points", "points"),
            ("route_empty_ms", "route over an empty table ms"),
            ("note", "NOTE"),
        )
        if key in r
    )
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
    return (
        f"{r['name']:52} {r['backend']:9} {r['value']:>10} {r['baseline'] or '-'!s:>10} "
        f"{ratio:>7}  {r['unit']:12} {r['target'] or '-'}{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 2 min)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "both"), default="both", help="which to run"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run (default: all): {', '.join(FIGURES)}",
    )
    args = parser.parse_args()
    only = {f.strip() for f in args.only.split(",") if f.strip()}
    if unknown := only - set(FIGURES):
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {FIGURES}")
    sizes = QUICK if args.quick else FULL
    machine = machine_line()
    print(machine, file=sys.stderr, flush=True)
    results: list[dict[str, Any]] = []
    out = Path(__file__).with_name("results.json")

    def record(row: dict[str, Any]) -> None:
        # Printed and saved as each figure ends: a long run that dies keeps what it measured.
        results.append(row)
        print(f"  {_line(row)}", file=sys.stderr, flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for backend in backends:
        if backend == "postgres":
            pg = pg_database()
            if pg is None:
                print(f"postgres: skipped, no server at {PG_URL}", file=sys.stderr)
                continue
            pg[1]()
        _suite(backend, sizes, only, record)

    header = (
        f"{'figure':52} {'backend':9} {'value':>10} {'baseline':>10} {'ratio':>7}  "
        f"{'unit':12} target"
    )
    print(machine)
    print(header)
    print("-" * len(header))
    for r in results:
        print(_line(r))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
