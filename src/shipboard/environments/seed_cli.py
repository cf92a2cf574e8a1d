"""`shipboard db seed`: the three environments, created directly in the database."""

from __future__ import annotations

from shipboard.config import get_settings
from shipboard.core.terminal import console
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments.service import seed_environments

out = console()


def seed() -> None:
    """Create the three environments if they are missing (safe to run again)."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        with system_transaction(engine) as session:
            created = seed_environments(session)
    finally:
        engine.dispose()
    out.print(f"created: {', '.join(created)}" if created else "all environments exist already")
