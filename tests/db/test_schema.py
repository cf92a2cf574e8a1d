"""The migrated database, introspected, against the spec's data model."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.db import migrate
from tests.support.databases import Database, DatabaseFactory
from tests.support.spec_schema import (
    PARTITIONED,
    SPEC_CHECKS,
    SPEC_ENUM_TYPES,
    SPEC_FOREIGN_KEYS,
    SPEC_INDEXES,
    SPEC_PRIMARY_KEYS,
    SPEC_TABLES,
)

TYPE_FAMILIES = {
    "postgresql": {
        "text": ("TEXT",),
        "uuid": ("UUID",),
        "json": ("JSONB",),
        "timestamp": ("TIMESTAMP",),
        "integer": ("INTEGER",),
        "numeric": ("NUMERIC",),
        "boolean": ("BOOLEAN",),
    },
    # SQLite has type affinities, not types: what matters is the declared type we chose.
    "sqlite": {
        "text": ("TEXT",),
        "uuid": ("CHAR(36)",),
        "json": ("JSON",),
        "timestamp": ("TEXT",),
        "integer": ("INTEGER",),
        "numeric": ("NUMERIC",),
        "boolean": ("BOOLEAN",),
    },
}


def default_kind(dialect: str, default: str | None) -> str | None:
    if default is None:
        return None
    text = default.lower()
    if "now()" in text or "strftime" in text:
        return "now"
    if "gen_random_uuid" in text or "randomblob" in text:
        return "uuid"
    if text.startswith("'{}'"):
        return "empty_json"
    if text in ("false", "0"):
        return "false"
    return f"unexpected default {default!r}"


@pytest.fixture
def migrated(empty_db: Database) -> Iterator[Engine]:
    migrate.upgrade(empty_db.url)
    engine = empty_db.engine()
    yield engine
    engine.dispose()


# Columns Shipboard adds to a spec table, after the spec's own (docs/data-model.md says why).
ADDED_COLUMNS = {"environments": {"config_secrets": ("json", True, None)}}


def test_tables_columns_types_nullability_and_defaults(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    dialect = migrated.dialect.name
    assert set(SPEC_TABLES) <= set(inspector.get_table_names())
    for table, spec in SPEC_TABLES.items():
        spec_columns = {**spec, **ADDED_COLUMNS.get(table, {})}
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        assert list(columns) == list(spec_columns), f"{table}: columns differ from the spec"
        for name, (family, nullable, default) in spec_columns.items():
            column = columns[name]
            declared = str(column["type"]).upper()
            assert declared.startswith(TYPE_FAMILIES[dialect][family]), (
                f"{table}.{name}: {declared} is not {family}"
            )
            # On PostgreSQL the partition key is part of the primary key (DESIGN.md §3).
            in_pk = dialect == "postgresql" and table in PARTITIONED and name == "timestamp"
            assert column["nullable"] == (nullable and not in_pk), f"{table}.{name}: nullability"
            assert default_kind(dialect, column["default"]) == default, f"{table}.{name}: default"
        if dialect == "postgresql":
            timestamp_types = {
                c["name"]: c["type"] for c in columns.values() if c["name"] in spec_columns
            }
            for name, (family, _, _) in spec_columns.items():
                if family == "timestamp":
                    assert timestamp_types[name].timezone, f"{table}.{name} must be TIMESTAMPTZ"


def test_primary_keys(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    for table, spec_pk in SPEC_PRIMARY_KEYS.items():
        pk = inspector.get_pk_constraint(table)["constrained_columns"]
        if migrated.dialect.name == "postgresql" and table in PARTITIONED:
            assert pk == [*spec_pk, "timestamp"]
        else:
            assert pk == spec_pk


def test_check_constraints_allow_exactly_the_spec_values(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    found: dict[tuple[str, str], set[str]] = {}
    for table in SPEC_TABLES:
        for check in inspector.get_check_constraints(table):
            column = re.match(r"\(?\s*(\w+)", check["sqltext"])
            assert column is not None
            found[(table, column.group(1))] = set(re.findall(r"'([^']*)'", check["sqltext"]))
    assert found == SPEC_CHECKS


def test_foreign_keys_and_on_delete(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    found = {}
    for table in SPEC_TABLES:
        for fk in inspector.get_foreign_keys(table):
            assert len(fk["constrained_columns"]) == 1
            ondelete = fk["options"].get("ondelete")
            found[(table, fk["constrained_columns"][0])] = (
                fk["referred_table"],
                fk["referred_columns"][0],
                ondelete.upper() if ondelete else None,
            )
    assert found == SPEC_FOREIGN_KEYS


def _sqlite_index_columns(engine: Engine, name: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"PRAGMA index_xinfo('{name}')").all()
    # columns: seqno, cid, name, desc, coll, key
    return [(r[2], "desc" if r[3] else "asc") for r in rows if r[5]]


def test_indexes_have_spec_names_and_columns(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for table in SPEC_TABLES:
        for index in inspector.get_indexes(table):
            if not index["name"].startswith("idx_"):
                continue
            if migrated.dialect.name == "sqlite":
                columns = _sqlite_index_columns(migrated, index["name"])
            else:
                sorting = index.get("column_sorting", {})
                columns = [
                    (c, "desc" if "desc" in sorting.get(c, ()) else "asc")
                    for c in index["column_names"]
                ]
            found[index["name"]] = (table, columns)
    assert found == SPEC_INDEXES


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_has_the_spec_enum_types(migrated: Engine) -> None:
    with migrated.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) "
                "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
            )
        ).all()
    assert dict(rows) == SPEC_ENUM_TYPES


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_rls_is_enabled_and_forced_on_all_spec_tables(migrated: Engine) -> None:
    with migrated.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname = ANY(:names)"
            ),
            {"names": list(SPEC_TABLES)},
        ).all()
        policies = conn.execute(sa.text("SELECT tablename, policyname FROM pg_policies")).all()
    assert {r[0]: (r[1], r[2]) for r in rows} == dict.fromkeys(SPEC_TABLES, (True, True))
    spec_policy_names = {
        ("environments", "Users can view all environments"),
        ("environments", "Admin users can manage environments"),
        ("deployment_configs", "Users can view deployments"),
        ("deployment_configs", "Authorized users can create deployments"),
        ("deployment_configs", "Users can update their deployments"),
        ("monitoring_metrics", "Users can view monitoring data"),
        ("monitoring_metrics", "System can create monitoring data"),
        ("security_scans", "Users can view security scans"),
        ("security_scans", "System can manage security scans"),
        ("security_findings", "Users can view security findings"),
        ("security_findings", "System can manage security findings"),
        ("performance_metrics", "Users can view performance metrics"),
        ("performance_metrics", "System can create performance metrics"),
        ("deployment_logs", "Users can view deployment logs"),
        ("deployment_logs", "System can create deployment logs"),
    }
    assert spec_policy_names <= set(policies)
    # Beyond the spec: retention and erasure, run as admin, may delete and rewrite these rows.
    for table in ("monitoring_metrics", "performance_metrics", "deployment_logs"):
        assert (table, f"Admins can delete {table}") in set(policies)
        assert (table, f"Admins can rewrite {table}") in set(policies)


def test_sqlite_runs_with_wal_and_foreign_keys(databases: DatabaseFactory) -> None:
    database = databases.new("sqlite")
    engine = database.engine()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
