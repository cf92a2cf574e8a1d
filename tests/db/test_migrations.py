"""One migration chain for both backends: up, all the way down, and up again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from shipboard.alerting.models import Alert, AlertRule
from shipboard.audit import service as audit
from shipboard.auth.models import ApiToken, User, WebSession
from shipboard.config import get_settings
from shipboard.core.crypto import KEY_FILE_NAME, Keyring, generate_key
from shipboard.core.sealing import unseal
from shipboard.core.time import utcnow
from shipboard.db import migrate
from shipboard.db.engine import system_transaction
from shipboard.db.types import GUID, JSONType, UTCDateTime
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.environments.models import Environment
from shipboard.environments.service import plaintext_config, seed_environments
from shipboard.integrations.models import IntegrationDeployment
from shipboard.notifications.models import NotificationChannel
from shipboard.security.models import SecurityFinding, SecurityScan
from tests.support.databases import SYSTEM, Database, DatabaseFactory
from tests.support.spec_schema import SPEC_ENUM_TYPES, SPEC_TABLES

OUR_TABLES = {*SPEC_TABLES, "users", "api_tokens", "audit_events"}
SQLITE_NO_OPS = {"20261126_0012"}  # row-level security policies exist on PostgreSQL only
DATA_ONLY = {"20261203_0014"}  # rewrite rows, change no schema
# Change only constraints (a CHECK, a column's NULL-ability), which the schema listing omits.
CONSTRAINTS_ONLY = {"20261204_0025"}
# Revisions that replace something (a unique key on more columns): their downgrade brings back
# what they replaced. PostgreSQL lists a unique constraint among the indexes.
RESTORES = {
    "20261203_0017": {
        "index:finding_identities:finding_identities_environment_scan_type_tool_fingerprint_key"
    }
}


def _tables(database: Database) -> set[str]:
    engine = database.engine()
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema(database: Database) -> set[str]:
    """Tables, columns, indexes and (on PostgreSQL) policies: what a revision may add and take
    away."""
    engine = database.engine()
    try:
        inspector = sa.inspect(engine)
        parts = set()
        for table in inspector.get_table_names():
            parts.add(table)
            parts.update(f"{table}.{c['name']}" for c in inspector.get_columns(table))
            parts.update(f"index:{table}:{i['name']}" for i in inspector.get_indexes(table))
        if database.backend == "postgres":
            with engine.connect() as conn:
                parts.update(
                    f"policy:{t}:{p}"
                    for t, p in conn.execute(
                        sa.text("SELECT tablename, policyname FROM pg_policies")
                    )
                )
        return parts
    finally:
        engine.dispose()


def _enum_types(database: Database) -> set[str]:
    engine = database.engine()
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(sa.text("SELECT typname FROM pg_type WHERE typtype = 'e'")).scalars()
            )
    finally:
        engine.dispose()


def test_upgrade_downgrade_base_upgrade_round_trip(empty_db: Database) -> None:
    migrate.upgrade(empty_db.url)
    assert _tables(empty_db) >= OUR_TABLES

    migrate.downgrade(empty_db.url, "base")
    assert _tables(empty_db) <= {"alembic_version"}
    if empty_db.backend == "postgres":
        assert _enum_types(empty_db).isdisjoint(SPEC_ENUM_TYPES)

    migrate.upgrade(empty_db.url)
    assert _tables(empty_db) >= OUR_TABLES
    engine = empty_db.engine()
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_every_revision_downgrades_and_upgrades_alone(empty_db: Database) -> None:
    migrate.upgrade(empty_db.url)
    engine = empty_db.engine()
    try:
        seen = []
        while (revision := migrate.current_revision(engine)) is not None:
            seen.append(revision)
            before = _schema(empty_db)
            migrate.downgrade(empty_db.url, "-1")
            after = _schema(empty_db) - RESTORES.get(revision, set())
            # A revision that changes nothing on this backend (PostgreSQL-only policies on
            # SQLite) may remove nothing here; every other must take away what it added.
            assert after <= before, f"downgrade of {revision} added something"
            if revision in DATA_ONLY | CONSTRAINTS_ONLY:
                assert after == before, f"{revision} changed the schema"
            elif revision not in SQLITE_NO_OPS or empty_db.backend == "postgres":
                assert after < before, f"downgrade of {revision} removed nothing"
            migrate.upgrade(empty_db.url, "+1")
            assert _schema(empty_db) == before, f"{revision} did not come back the same"
            migrate.downgrade(empty_db.url, "-1")
        assert seen[0] == migrate.head_revision()
        assert len(seen) >= 3
    finally:
        engine.dispose()


def test_cli_migrates_reports_and_downgrades(empty_db: Database) -> None:
    env = {
        "SHIPBOARD_DATABASE_URL": empty_db.url,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }

    def shipboard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipboard", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    result = shipboard("db", "current")
    assert result.returncode == 0
    assert "base" in result.stdout

    result = shipboard("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert migrate.head_revision() in result.stdout

    result = shipboard("db", "current")
    assert "up to date" in result.stdout

    result = shipboard("db", "downgrade", "base", "--yes")
    assert result.returncode == 0, result.stderr
    assert _tables(empty_db) == set()


def test_webhook_triggerers_are_namespaced_by_the_migration_and_back(empty_db: Database) -> None:
    """Deployments recorded from webhooks before namespacing get ``github:``/``gitlab:`` on
    upgrade; local users' deployments keep their name; a downgrade restores the bare login."""
    migrate.upgrade(empty_db.url, "20261126_0013")
    engine = empty_db.engine()
    ids = {name: uuid.uuid4() for name in ("octocat", "root", "alice")}
    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            for name, deployment_id in ids.items():
                session.add(
                    DeploymentConfig(
                        id=deployment_id,
                        environment="staging",
                        version="1",
                        commit_sha="abc1234",
                        status="success",
                        triggered_by=name,
                    )
                )
            session.flush()
            for kind, name in (("github", "octocat"), ("gitlab", "root")):
                session.add(
                    IntegrationDeployment(kind=kind, external_id=name, deployment_id=ids[name])
                )

        def triggerers() -> dict[str, str]:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(DeploymentConfig.id, DeploymentConfig.triggered_by))
                by_id = {row[0]: row[1] for row in rows}
            return {name: by_id[deployment_id] for name, deployment_id in ids.items()}

        migrate.upgrade(empty_db.url, "20261203_0014")
        assert triggerers() == {
            "octocat": "github:octocat",
            "root": "gitlab:root",
            "alice": "alice",
        }
        migrate.downgrade(empty_db.url, "20261126_0013")
        assert triggerers() == {"octocat": "octocat", "root": "root", "alice": "alice"}
    finally:
        engine.dispose()


def test_quota_alert_state_is_carried_over_from_the_audit_trail(empty_db: Database) -> None:
    """An environment whose latest quota event is a crossing starts over its quota (no second
    alert after the upgrade); one that recovered since, or never crossed, starts below."""
    migrate.upgrade(empty_db.url, "20261203_0019")
    engine = empty_db.engine()
    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            for environment, actions in (
                ("staging", ["storage.quota_exceeded"]),
                ("production", ["storage.quota_exceeded", "storage.quota_recovered"]),
            ):
                for action in actions:
                    audit.record(
                        session,
                        context=SYSTEM,
                        action=action,
                        target_type="environment",
                        target_id=environment,
                    )
        migrate.upgrade(empty_db.url, "20261203_0020")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT environment FROM storage_quota_alerts")).all()
        assert [row[0] for row in rows] == ["staging"]
        migrate.downgrade(empty_db.url, "20261203_0019")
        assert "storage_quota_alerts" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_alerts_survive_the_rebuild_of_alert_rules_and_promql_rules_go_on_downgrade(
    empty_db: Database,
) -> None:
    """SQLite rebuilds alert_rules to admit promql rules; the rebuild must not cascade to the
    alerts (ON DELETE CASCADE), and the downgrade drops only what the old schema cannot hold."""
    migrate.upgrade(empty_db.url, "20261203_0024")
    engine = empty_db.engine()
    now = utcnow()

    def rule(kind: str, metric: str | None, spec: dict[str, object]) -> AlertRule:
        return AlertRule(
            id=uuid.uuid4(),
            name=f"{kind}-rule",
            kind=kind,
            environment="production",
            metric=metric,
            spec=spec,
            severity="high",
            labels={},
            annotations={},
            channels=[],
            enabled=True,
            created_at=now,
            updated_at=now,
        )

    def alert(rule_id: uuid.UUID) -> Alert:
        return Alert(
            id=uuid.uuid4(),
            rule_id=rule_id,
            fingerprint=rule_id.hex[:16],
            state="firing",
            value=12,
            labels={"alertname": "x"},
            annotations={},
            transitions=[],
            updated_at=now,
        )

    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            threshold = rule("threshold", "errors", {"window_s": 60})
            session.add(threshold)
            session.flush()
            session.add(alert(threshold.id))
        migrate.upgrade(empty_db.url, "20261204_0025")
        with system_transaction(engine) as session:
            promql = rule("promql", None, {"query": "up"})
            session.add(promql)
            session.flush()
            session.add(alert(promql.id))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one() == 2
        migrate.downgrade(empty_db.url, "20261203_0024")
        with engine.connect() as conn:
            kinds = conn.execute(sa.text("SELECT kind FROM alert_rules")).scalars().all()
            alerts = conn.execute(sa.text("SELECT rule_id FROM alerts")).scalars().all()
        assert kinds == ["threshold"]
        assert [str(a).replace("-", "") for a in alerts] == [threshold.id.hex]
        migrate.upgrade(empty_db.url)
    finally:
        engine.dispose()


def _row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in sa.inspect(conn).get_table_names()
            if table != "alembic_version"
        }


def test_no_row_is_lost_when_a_migration_rebuilds_a_table(empty_db: Database) -> None:
    """SQLite cannot alter a constraint in place: Alembic's batch mode copies the table, drops
    the old one and renames the copy (0017 finding_identities, 0025 alert_rules; downgrades of
    0015 and 0010 rebuild users, of 0009 deployment_runs). With foreign keys on, that DROP
    TABLE deletes every row first, and ON DELETE CASCADE took the rows that reference it
    (finding occurrences, alerts, API tokens, web sessions) along. Every table keeps its rows
    through every revision, up from 20261203_0016 and down to 20261126_0008, except the tables
    a downgrade drops."""
    migrate.upgrade(empty_db.url, "20261203_0016")
    engine = empty_db.engine()
    now = utcnow()
    identities = sa.table(
        "finding_identities",
        *(sa.column(c) for c in ("environment", "scan_type", "tool", "fingerprint", "rule_id")),
        *(sa.column(c) for c in ("status", "reopened_count")),
        sa.column("id", GUID),
        sa.column("latest_finding_id", GUID),
        sa.column("first_seen_at", UTCDateTime),
        sa.column("last_seen_at", UTCDateTime),
    )
    occurrences = sa.table(
        "finding_occurrences",
        sa.column("finding_id", GUID),
        sa.column("identity_id", GUID),
        sa.column("occurrences"),
    )
    runs = sa.table(
        "deployment_runs",
        sa.column("deployment_id", GUID),
        sa.column("managed"),
        sa.column("forced"),
        sa.column("needs_approval"),
    )
    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            scan = SecurityScan(
                id=uuid.uuid4(), type="sast", environment="staging", status="completed"
            )
            findings = [
                SecurityFinding(
                    id=uuid.uuid4(), scan_id=scan.id, severity="high", title=t, description=t
                )
                for t in ("sqli", "xss")
            ]
            rule = AlertRule(
                id=uuid.uuid4(),
                name="errors",
                kind="threshold",
                environment="production",
                metric="errors",
                spec={"window_s": 60},
                severity="high",
                labels={},
                annotations={},
                channels=[],
                enabled=True,
                created_at=now,
                updated_at=now,
            )
            user = User(id=uuid.uuid4(), name="alice", role="deployer")
            deployment = DeploymentConfig(
                id=uuid.uuid4(),
                environment="staging",
                version="1",
                commit_sha="abc1234",
                status="success",
                triggered_by="alice",
            )
            session.add_all([scan, rule, user, deployment])
            session.flush()
            session.add_all(
                [
                    *findings,
                    Alert(
                        id=uuid.uuid4(),
                        rule_id=rule.id,
                        fingerprint="f1",
                        state="firing",
                        value=12,
                        labels={"alertname": "errors"},
                        annotations={},
                        transitions=[],
                        updated_at=now,
                    ),
                    ApiToken(user_id=user.id, token_hash="h1", prefix="sb_1"),
                    WebSession(
                        id_hash="s1",
                        user_id=user.id,
                        csrf_token="c1",
                        second_factor_pending=False,
                        created_at=now,
                        last_seen_at=now,
                        expires_at=now,
                    ),
                ]
            )
            session.flush()
            conn = session.connection()
            for finding in findings:
                identity_id = uuid.uuid4()
                conn.execute(
                    identities.insert().values(
                        id=identity_id,
                        environment="staging",
                        scan_type="sast",
                        tool="semgrep",
                        fingerprint=finding.title,
                        rule_id=finding.title,
                        status="open",
                        reopened_count=0,
                        latest_finding_id=finding.id,
                        first_seen_at=now,
                        last_seen_at=now,
                    )
                )
                conn.execute(
                    occurrences.insert().values(
                        finding_id=finding.id, identity_id=identity_id, occurrences=3
                    )
                )
            conn.execute(
                runs.insert().values(
                    deployment_id=deployment.id, managed=True, forced=False, needs_approval=False
                )
            )

        lost: dict[str, dict[str, tuple[int, int]]] = {}

        def step(direction: str) -> None:
            before = _row_counts(engine)
            revision = migrate.current_revision(engine)
            if direction == "up":
                migrate.upgrade(empty_db.url, "+1")
                revision = migrate.current_revision(engine)
            else:
                migrate.downgrade(empty_db.url, "-1")
            after = _row_counts(engine)
            gone = {t: (n, after[t]) for t, n in before.items() if t in after and after[t] != n}
            if gone:
                lost[f"{direction} {revision}"] = gone

        start = _row_counts(engine)
        assert {t: start[t] for t in ("finding_occurrences", "alerts", "api_tokens")} == {
            "finding_occurrences": 2,
            "alerts": 1,
            "api_tokens": 1,
        }
        while migrate.current_revision(engine) != migrate.head_revision():
            step("up")
        while migrate.current_revision(engine) != "20261126_0008":
            step("down")
        assert lost == {}
    finally:
        engine.dispose()


def test_sqlite_migrations_refuse_to_commit_rows_that_reference_nothing(
    databases: DatabaseFactory,
) -> None:
    """With foreign keys off during the migrations, a migration could leave a row pointing at
    nothing; PRAGMA foreign_key_check before the commit finds it and the whole upgrade rolls
    back. An upgrade with nothing to do does not scan the database. Foreign keys are on again on
    the connection afterwards, whether the upgrade failed or not."""
    database = databases.new("sqlite")
    migrate.upgrade(database.url, "20261203_0016")
    path = sa.engine.make_url(database.url).database
    assert path is not None
    raw = sqlite3.connect(path)
    try:
        # What a broken migration would leave: a web session of a user who does not exist.
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(
            "INSERT INTO web_sessions VALUES ('orphan', 'nobody', 'c', 0, 'x', 'x', 'x', NULL)"
        )
        raw.commit()
    finally:
        raw.close()
    engine = database.engine()
    try:
        before = _schema(database)
        with pytest.raises(Exception, match=r"after the upgrade \(20261203_0017 … ") as e:
            migrate.upgrade(database.url)
        assert "web_sessions row 1 references a missing users row" in str(e.value)
        assert f"… {migrate.head_revision()}), 1 rows reference rows that" in str(e.value)
        assert "the upgrade was rolled back, nothing was changed" in str(e.value)
        assert migrate.current_revision(engine) == "20261203_0016"
        assert _schema(database) == before
        result = subprocess.run(
            [sys.executable, "-m", "shipboard", "db", "upgrade"],
            env={**os.environ, "SHIPBOARD_DATABASE_URL": database.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: after the upgrade (20261203_0017 … ")
        assert migrate.current_revision(engine) == "20261203_0016"

        cfg = migrate.alembic_config(database.url)
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            with pytest.raises(Exception, match="the upgrade was rolled back"):
                command.upgrade(cfg, "head")
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM web_sessions"))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert migrate.current_revision(engine) == migrate.head_revision()

        # At the head, nothing runs and nothing is checked: the server still starts.
        raw = sqlite3.connect(path)
        try:
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute(
                "INSERT INTO web_sessions VALUES ('orphan', 'nobody', 'c', 0, 'x', 'x', 'x', NULL)"
            )
            raw.commit()
        finally:
            raw.close()
        migrate.upgrade(database.url)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_plaintext_credentials_are_encrypted_by_the_migration_and_back(
    empty_db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rows written before 20261203_0021 — environment config with a database URL password
    and a step token, a pipeline snapshot, a channel whose URL and token sit in ``config`` —
    hold no plaintext after it, and read back the same through the key. Without a key the
    migration stops and changes nothing; the downgrade restores the config in the clear."""
    migrate.upgrade(empty_db.url, "20261203_0020")
    engine = empty_db.engine()
    config = {
        "database_url": "postgresql://app:mig-db-pw-1a2b@db/app",
        "pipeline": {
            "steps": [
                {"name": "s", "stage": "deploy", "run": "true", "env": {"API_TOKEN": "mig-tok-3c"}}
            ]
        },
        "api_rate_limit": 600,
    }
    channel_config = {"url": "https://hooks.example/x?token=mig-chan-4d", "token": "mig-chan-5e"}
    plaintexts = ("mig-db-pw-1a2b", "mig-tok-3c", "mig-chan-4d", "mig-chan-5e")
    deployment_id = uuid.uuid4()
    channel_id = uuid.uuid4()
    environments = sa.table("environments", sa.column("name"), sa.column("config", JSONType))
    runs = sa.table(
        "deployment_runs",
        sa.column("deployment_id", GUID),
        sa.column("managed"),
        sa.column("forced"),
        sa.column("needs_approval"),
        sa.column("pipeline", JSONType),
    )
    channels = sa.table(
        "notification_channels",
        sa.column("id", GUID),
        sa.column("name"),
        sa.column("kind"),
        sa.column("config", JSONType),
        sa.column("secrets", JSONType),
        sa.column("group_by", JSONType),
        sa.column("group_wait_s"),
        sa.column("group_interval_s"),
        sa.column("repeat_interval_s"),
        sa.column("send_resolved"),
        sa.column("created_at", UTCDateTime),
    )
    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            session.add(
                DeploymentConfig(
                    id=deployment_id,
                    environment="staging",
                    version="1",
                    commit_sha="abc1234",
                    status="success",
                    triggered_by="alice",
                )
            )
        with engine.begin() as conn:
            conn.execute(
                environments.update().where(environments.c.name == "staging").values(config=config)
            )
            conn.execute(
                runs.insert().values(
                    deployment_id=deployment_id,
                    managed=True,
                    forced=False,
                    needs_approval=False,
                    pipeline=config["pipeline"],
                )
            )
            conn.execute(
                channels.insert().values(
                    id=channel_id,
                    name="old",
                    kind="webhook",
                    config=channel_config,
                    secrets={},
                    group_by=[],
                    group_wait_s=30,
                    group_interval_s=300,
                    repeat_interval_s=14400,
                    send_resolved=True,
                    created_at=utcnow(),
                )
            )

        def dump() -> str:
            with engine.connect() as conn:
                return repr(
                    [
                        conn.execute(sa.text(f"SELECT * FROM {t}")).all()
                        for t in ("environments", "deployment_runs", "notification_channels")
                    ]
                )

        # No key reachable: refused, nothing changed.
        monkeypatch.delenv("SHIPBOARD_SECRET_KEYS", raising=False)
        monkeypatch.setenv("SHIPBOARD_HOME", str(tmp_path / "no-key-here"))
        get_settings.cache_clear()
        before = dump()
        with pytest.raises(Exception, match="needs the server's key"):
            migrate.upgrade(empty_db.url, "20261203_0021")
        assert migrate.current_revision(engine) == "20261203_0020"
        assert dump() == before

        key = generate_key()
        home = tmp_path / "home"
        home.mkdir()
        (home / KEY_FILE_NAME).write_text(f"{key}\n")
        monkeypatch.setenv("SHIPBOARD_HOME", str(home))
        get_settings.cache_clear()
        migrate.upgrade(empty_db.url, "20261203_0021")
        after = dump()
        assert [p for p in plaintexts if p in after] == []
        keyring = Keyring([key.encode()])
        with system_transaction(engine) as session:
            environment = session.get(Environment, "staging")
            assert environment is not None
            assert plaintext_config(environment, keyring=keyring) == config
            run = session.get(DeploymentRun, deployment_id)
            assert run is not None
            assert unseal(run.pipeline, run.pipeline_secrets, keyring) == config["pipeline"]
            channel = session.get(NotificationChannel, channel_id)
            assert channel is not None
            assert channel.config == {}
            assert {k: keyring.decrypt(v) for k, v in channel.secrets.items()} == channel_config

        migrate.downgrade(empty_db.url, "20261203_0020")
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(environments.c.config).where(environments.c.name == "staging")
            ).scalar_one()
            assert stored == config
    finally:
        get_settings.cache_clear()
        engine.dispose()
