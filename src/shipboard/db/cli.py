"""`shipboard db …`: schema migrations and seeding, run directly against the database."""

from __future__ import annotations

import typer
from rich.console import Console

from shipboard.config import get_settings
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments.service import seed_environments

app = typer.Typer(
    help="Migrate and seed the database (SHIPBOARD_DATABASE_URL).", no_args_is_help=True
)
out = Console()


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = get_settings().effective_database_url
    migrate.upgrade(url, revision)
    out.print(f"database at revision {_current(url) or 'base'}")


@app.command()
def downgrade(
    revision: str = typer.Argument(
        "-1", help="Target revision, 'base' for an empty database, or -N"
    ),
) -> None:
    """Revert migrations down to REVISION; `base` removes every table and type of Shipboard."""
    url = get_settings().effective_database_url
    migrate.downgrade(url, revision)
    out.print(f"database at revision {_current(url) or 'base'}")


@app.command()
def current() -> None:
    """Print the database's revision and whether it is the latest."""
    url = get_settings().effective_database_url
    rev = _current(url)
    head = migrate.head_revision()
    state = "up to date" if rev == head else f"behind (latest is {head})"
    out.print(f"{rev or 'base'} ({state})")


@app.command()
def seed() -> None:
    """Create the three environments if they are missing (safe to run again)."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        with system_transaction(engine) as session:
            created = seed_environments(session)
    finally:
        engine.dispose()
    out.print(f"created: {', '.join(created)}" if created else "all environments exist already")


@app.command()
def retention(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be removed"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Remove metrics and deployment logs past each environment's retention (what the scheduler
    does hourly): whole partitions on PostgreSQL, batches of rows otherwise."""
    import json

    from shipboard.auth.cli import cli_audit_context
    from shipboard.core.logging import configure_logging
    from shipboard.ops import retention as jobs

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


def _current(url: str) -> str | None:
    engine = create_db_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()
