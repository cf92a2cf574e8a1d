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


def _current(url: str) -> str | None:
    engine = create_db_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()
