"""Monthly range partitions of the time-series tables (PostgreSQL only)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

PARTITIONED_TABLES = ("monitoring_metrics", "performance_metrics", "deployment_logs")


def month_start(day: date, offset: int = 0) -> date:
    index = day.year * 12 + (day.month - 1) + offset
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_{month.year:04d}_{month.month:02d}"


def ensure_partitions(
    conn: sa.Connection, *, today: date | None = None, months_ahead: int = 1
) -> list[str]:
    """Create the current month's partitions and ``months_ahead`` more; return those created."""
    today = today or datetime.now(UTC).date()
    created: list[str] = []
    for table in PARTITIONED_TABLES:
        for offset in range(months_ahead + 1):
            start, end = month_start(today, offset), month_start(today, offset + 1)
            name = partition_name(table, start)
            exists = conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar()
            if exists:
                continue
            # Identifiers come from the constants above and dates, never from input.
            conn.execute(
                sa.text(
                    f'CREATE TABLE "{name}" PARTITION OF "{table}" '
                    f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') "
                    f"TO ('{end.isoformat()} 00:00:00+00')"
                )
            )
            created.append(name)
    return created


def create_default_partitions(conn: sa.Connection) -> None:
    for table in PARTITIONED_TABLES:
        conn.execute(
            sa.text(f'CREATE TABLE IF NOT EXISTS "{table}_default" PARTITION OF "{table}" DEFAULT')
        )
