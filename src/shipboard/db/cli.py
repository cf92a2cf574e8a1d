"""`shipboard db …`: schema migrations, run directly against the database. The group's other
commands (seed, retention, health, copy) belong to the domains whose work they do; the root CLI
mounts them here."""

from __future__ import annotations

import sys

import typer
from alembic.util import CommandError
from sqlalchemy.engine import make_url

from shipboard.config import get_settings
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import console
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine

app = typer.Typer(
    help="Migrate and seed the database (SHIPBOARD_DATABASE_URL).", no_args_is_help=True
)
out = console()


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = get_settings().effective_database_url
    migrate.upgrade(url, revision)
    out.print(f"database at revision {_current(url) or 'base'}")


# "-3" looks like an option to click; let it through as the REVISION argument.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: str = typer.Argument(
        "-1", help="Target revision, 'base' for an empty database, or -N (N steps back)"
    ),
    yes: bool = typer.Option(
        False, "--yes", help="Confirm `base` (it drops every table and all their data)"
    ),
) -> None:
    """Revert migrations down to REVISION; `base` removes every table and type of Shipboard,
    alembic_version included, and asks for --yes (or a typed confirmation on a terminal)."""
    if revision.startswith("-") and not revision[1:].isdigit():
        raise InvalidInput(f"no such option or revision: {revision!r} (use -N, REV or base)")
    url = get_settings().effective_database_url
    if revision == "base" and not yes:
        _confirm_base(url)
    try:
        migrate.downgrade(url, revision)
    except CommandError as exc:  # an unknown revision, or more steps back than there are
        raise InvalidInput(f"cannot downgrade to {revision!r}: {exc}") from exc
    if revision == "base":
        migrate.drop_version_table(url)
    out.print(f"database at revision {_current(url) or 'base'}")


def _confirm_base(url: str) -> None:
    where = make_url(url).render_as_string(hide_password=True)
    if not sys.stdin.isatty():
        raise InvalidInput(
            f"`db downgrade base` drops every table of {where} and all their data; "
            "run it again with --yes to confirm"
        )
    answer = typer.prompt(
        f"This drops every table of {where} and all their data. Type 'drop everything' to go on"
    )
    if answer.strip() != "drop everything":
        raise InvalidInput("not confirmed; nothing was changed")


@app.command()
def current() -> None:
    """Print the database's revision and whether it is the latest."""
    url = get_settings().effective_database_url
    rev = _current(url)
    head = migrate.head_revision()
    state = "up to date" if rev == head else f"behind (latest is {head})"
    out.print(f"{rev or 'base'} ({state})")


def _current(url: str) -> str | None:
    engine = create_db_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()
