"""Whether PostgreSQL's row-level security would silently hide rows from a system job.

A DELETE or UPDATE that no policy admits affects no row and raises nothing. Jobs that must
remove or rewrite rows (retention, erasure) ask first, so they fail loudly instead of reporting
success over data they never touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.errors import ServiceUnavailable
from shipboard.db.engine import is_postgres


def blocked_tables(session: Session, *, tables: list[str], command: str) -> list[str]:
    """The tables where the connection's role may not ``command`` (DELETE/UPDATE) every row."""
    if not is_postgres(session) or not tables:
        return []
    bypass = session.scalar(
        sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    )
    if bypass:
        return []
    rows = session.execute(
        sa.text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "pg_get_userbyid(c.relowner) = current_user AS owned, "
            "EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = n.nspname "
            "AND p.tablename = c.relname AND p.cmd IN (:cmd, 'ALL')) AS admitted "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(:tables)"
        ),
        {"cmd": command.upper(), "tables": tables},
    )
    blocked = []
    for name, enabled, forced, owned, admitted in rows:
        if not enabled or (owned and not forced) or admitted:
            continue
        blocked.append(str(name))
    return sorted(blocked)


def require_unblocked(session: Session, *, tables: list[str], command: str, what: str) -> None:
    """Raise when row-level security would make ``command`` skip rows of ``tables``."""
    blocked = blocked_tables(session, tables=tables, command=command)
    if blocked:
        raise ServiceUnavailable(
            f"{what} needs {command.upper()} on {', '.join(blocked)}, which row-level security "
            "refuses to this database user without a word: run it as the owner with BYPASSRLS "
            "(or a superuser), or apply the migration that adds the admin policies"
        )
