"""Shapes of the operations endpoints: database health, an environment's storage usage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class PoolUsage(BaseModel):
    """The connection pool of the process that answers (the server's, or the CLI's own)."""

    size: int
    checked_out: int
    overflow: int
    max_overflow: int


class SlowQuery(BaseModel):
    query: str
    calls: int
    mean_ms: float
    total_ms: float
    rows: int


class SlowQueries(BaseModel):
    available: bool
    # Why they are missing and how to enable them, when they are.
    message: str | None = None
    items: list[SlowQuery] = []


class UnusedIndex(BaseModel):
    table: str
    index: str
    size_bytes: int


class SequentialScans(BaseModel):
    table: str
    live_rows: int
    seq_scans: int
    seq_rows_read: int
    index_scans: int


class TableBloat(BaseModel):
    table: str
    live_rows: int
    dead_rows: int
    dead_ratio: float
    last_autovacuum: datetime | None


class Connections(BaseModel):
    used: int
    max: int
    reserved: int
    this_database: int
    by_state: dict[str, int]


class Replica(BaseModel):
    name: str
    client: str | None
    state: str | None
    sync_state: str | None
    replay_lag_s: float | None
    lag_bytes: int | None


class Replication(BaseModel):
    is_replica: bool
    # On a replica: how far its replay is behind the primary's last transaction.
    replay_delay_s: float | None = None
    replicas: list[Replica] = []


class PartitionCoverage(BaseModel):
    table: str
    partitions: int
    # Whole months covered after the current one (-1: not even the current month).
    months_ahead: int
    covered_until: date | None
    default_rows: int


class PostgresHealth(BaseModel):
    version: str
    database_bytes: int
    stats_since: datetime | None
    slow_queries: SlowQueries
    unused_indexes: list[UnusedIndex]
    sequential_scans: list[SequentialScans]
    bloat: list[TableBloat]
    connections: Connections
    replication: Replication
    partitions: list[PartitionCoverage]


class SqliteHealth(BaseModel):
    path: str
    file_bytes: int
    wal_bytes: int
    page_size: int
    page_count: int
    freelist_count: int
    journal_mode: str


class DbHealth(BaseModel):
    backend: Literal["postgresql", "sqlite"]
    checked_at: datetime
    pool: PoolUsage | None
    postgres: PostgresHealth | None = None
    sqlite: SqliteHealth | None = None
    # Things an operator should act on, in words.
    warnings: list[str] = []


# --- storage usage ----------------------------------------------------------------------------


class TableUsage(BaseModel):
    table: str
    rows: int
    bytes: int = Field(description="Estimated bytes of this environment's rows, indexes included")


class EnvironmentUsage(BaseModel):
    """What an environment stores, table by table, against ``limits.storage_quota_gb``."""

    environment: str
    tables: list[TableUsage]
    rows: int
    bytes: int
    quota_bytes: int | None = Field(description="storage_quota_gb × 2^30; null without a quota")
    used_pct: float | None
    method: str = Field(description="How bytes were estimated")
    measured_at: datetime
