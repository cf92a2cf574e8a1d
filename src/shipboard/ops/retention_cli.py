"""`shipboard db retention`: the hourly retention job, run once from the command line."""

from __future__ import annotations

import json

import typer

from shipboard.auth.cli import cli_audit_context
from shipboard.config import get_settings
from shipboard.core.logging import configure_logging
from shipboard.core.terminal import console
from shipboard.db.engine import create_db_engine
from shipboard.ops import retention as jobs

out = console()


def retention(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be removed"),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON document on standard output, for scripts."
    ),
) -> None:
    """Remove metrics and deployment logs past each environment's retention (what the scheduler
    does hourly): whole partitions on PostgreSQL, batches of rows otherwise."""
    settings = get_settings()
    configure_logging(settings)  # events to stderr: stdout is the report
    engine = create_db_engine(settings.effective_database_url)
    try:
        report = jobs.enforce(engine, dry_run=dry_run, audit_context=cli_audit_context())
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(vars(report)))
        return
    verb = "would remove" if dry_run else "removed"
    for name, days in sorted(report.horizons.items()):
        out.print(f"{name}: metrics {days['metrics']} days, logs {days['logs']} days")
    for partition in report.dropped_partitions:
        out.print(f"{verb} partition {partition}")
    for table, count in report.deleted.items():
        out.print(f"{verb} {count} row(s) from {table}")
    if report.created_partitions:
        out.print(f"created partitions: {', '.join(report.created_partitions)}")
