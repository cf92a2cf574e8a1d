"""What a new user trips on first: removing a limit, downgrading, database URLs, dry runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from shipboard.db import migrate
from tests.support.databases import PG_BASE_URL, Database, require_postgres
from tests.support.live import Clients


def shipboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _tables(db: Database) -> set[str]:
    engine = db.engine()
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(db: Database) -> str | None:
    engine = db.engine()
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def test_env_set_unset_removes_limits(clients: Clients) -> None:
    env = {"SHIPBOARD_URL": clients.server.base_url, "SHIPBOARD_TOKEN": clients.tokens["admin"]}
    done = shipboard(
        "env",
        "set",
        "staging",
        "--limit",
        "max_deployment_frequency=3",
        "--limit",
        "api_rate_limit=100",
        "--config",
        "api_rate_limit=50",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    done = shipboard("env", "set", "staging", "--unset", "max_deployment_frequency", env=env)
    assert done.returncode == 0, done.stderr
    with clients.as_role("admin") as admin:
        shown = admin.get("/api/v1/environments/staging").json()
    assert shown["limits"] == {"api_rate_limit": 100}
    # api_rate_limit is a config key and a limit: the bare name is the config key, as before.
    done = shipboard("env", "set", "staging", "--unset", "limits.api_rate_limit", env=env)
    assert done.returncode == 0, done.stderr
    with clients.as_role("admin") as admin:
        shown = admin.get("/api/v1/environments/staging").json()
    assert shown["limits"] == {}
    assert shown["config"]["api_rate_limit"] == 50


def test_db_downgrade_minus_n_goes_n_revisions_back(empty_db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": empty_db.url}
    migrate.upgrade(empty_db.url)
    script = ScriptDirectory.from_config(migrate.alembic_config(empty_db.url))
    chain = [r.revision for r in script.walk_revisions()]  # newest first
    done = shipboard("db", "downgrade", "-3", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _revision(empty_db) == chain[3]
    assert chain[3] in done.stdout
    too_far = shipboard("db", "downgrade", f"-{len(chain) + 5}", env=env)
    assert too_far.returncode == 2, too_far.stderr
    assert "Traceback" not in too_far.stderr
    assert _revision(empty_db) == chain[3]


def test_db_downgrade_base_needs_yes_and_leaves_nothing(empty_db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": empty_db.url}
    migrate.upgrade(empty_db.url)
    before = _tables(empty_db)
    refused = shipboard("db", "downgrade", "base", env=env)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert _tables(empty_db) == before
    done = shipboard("db", "downgrade", "base", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert _tables(empty_db) == set()
    # And it comes back.
    assert shipboard("db", "upgrade", env=env).returncode == 0
    assert _revision(empty_db) == migrate.head_revision()


@pytest.mark.parametrize(
    "url", ["mysql://root@127.0.0.1/shipboard", "mongodb://x/y", "/var/lib/shipboard.db"]
)
def test_unsupported_database_url_is_a_usage_error_naming_the_supported_ones(url: str) -> None:
    done = shipboard("db", "current", env={"SHIPBOARD_DATABASE_URL": url})
    assert done.returncode == 2, done.stderr
    assert "does not support" in done.stderr
    assert "postgresql://" in done.stderr
    assert "sqlite:///" in done.stderr
    assert "internal error" not in done.stderr


def test_missing_postgres_database_is_named_with_how_to_create_it() -> None:
    require_postgres()
    url = sa.make_url(PG_BASE_URL).set(database="shipboard_no_such_db_h21a")
    done = shipboard(
        "db", "current", env={"SHIPBOARD_DATABASE_URL": url.render_as_string(hide_password=False)}
    )
    assert done.returncode == 4, done.stderr
    assert "'shipboard_no_such_db_h21a' does not exist" in done.stderr
    assert "createdb shipboard_no_such_db_h21a" in done.stderr
    assert "CREATE DATABASE" in done.stderr


def test_retention_dry_run_prints_no_log_line(db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url, "SHIPBOARD_LOG_LEVEL": "info"}
    dry = shipboard("db", "retention", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "retention_done" not in dry.stderr
    assert dry.stderr.strip() == ""
    real = shipboard("db", "retention", env=env)
    assert real.returncode == 0, real.stderr
    assert "retention_done" in real.stderr
