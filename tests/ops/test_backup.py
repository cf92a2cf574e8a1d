"""Backups on both backends: every table populated through the API, backed up while the server
runs, verified, restored into an empty database and served again; damaged archives, a database
that is not empty, a full disk, and scheduled backups with pruning."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.errors import Conflict, InvalidInput
from shipboard.db import migrate
from shipboard.db.partitions import PARTITIONED_TABLES
from shipboard.jobs.schedule import Schedule
from shipboard.ops import tasks as ops_tasks
from shipboard.ops.backup import checksums, create, pgtools, restore, verify
from shipboard.ops.backup.manifest import PG_MEMBER, SQLITE_MEMBER
from tests.support.cli import shipboard
from tests.support.databases import Database, DatabaseFactory
from tests.support.live import Clients, LiveServer
from tests.support.populate import (
    assert_every_table_has_rows,
    digests,
    ok_json,
    populate,
    small_database,
)


def env_for(database: Database, home: Path) -> dict[str, str]:
    return {"SHIPBOARD_DATABASE_URL": database.url, "SHIPBOARD_HOME": str(home)}


# --- the round trip ---------------------------------------------------------------------------


def test_round_trip_with_every_table_while_the_server_runs(
    clients: Clients,
    engine: Engine,
    db: Database,
    databases: DatabaseFactory,
    tmp_path: Path,
    receiver: Any,
) -> None:
    populate(clients, engine, receiver_url=receiver.url)
    counts = assert_every_table_has_rows(engine)
    archive = tmp_path / "nightly.tar"
    # A process of its own, as an operator runs it beside the server.
    started = time.monotonic()
    created = shipboard(
        "backup", "create", "--output", str(archive), "--json", env=env_for(db, tmp_path)
    )
    create_s = time.monotonic() - started
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert {t: body["tables"][t]["rows"] for t in counts} == counts
    assert body["schema_revision"] == migrate.head_revision()
    assert body["backend"] == ("postgresql" if db.backend == "postgres" else "sqlite")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["manifest.json", backup_member(db)]
    if db.backend == "postgres":
        for table in PARTITIONED_TABLES:
            partitions = {
                name: rows
                for name, rows in body["partitions"].items()
                if name.startswith(f"{table}_")
            }
            assert sum(partitions.values()) == counts[table]
        month_partitions = [
            name
            for name, rows in body["partitions"].items()
            if rows and not name.endswith("_default")
        ]
        assert {n.rsplit("_", 2)[0] for n in month_partitions} >= {
            "monitoring_metrics",
            "deployment_logs",
        }
        assert len([n for n in month_partitions if n.startswith("monitoring_metrics_")]) == 2
        assert body["partitions"]["monitoring_metrics_default"] == 1  # the 2019 sample

    started = time.monotonic()
    verified = shipboard("backup", "verify", str(archive), env=env_for(db, tmp_path))
    verify_s = time.monotonic() - started
    assert verified.returncode == 0, verified.stderr
    assert "OK" in verified.stderr

    target = databases.new(db.backend)
    started = time.monotonic()
    restored = shipboard("backup", "restore", str(archive), "--json", env=env_for(target, tmp_path))
    restore_s = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    print(
        f"\n[{db.backend}] {sum(counts.values())} rows, archive {archive.stat().st_size} bytes: "
        f"create {create_s:.2f} s, verify {verify_s:.2f} s, restore {restore_s:.2f} s "
        "(each a new process)"
    )
    # Independently of the manifest: the restored database has the live one's content.
    assert digests(target.url) == {
        name: checksums.TableDigest(v["rows"], v["checksum"]) for name, v in body["tables"].items()
    }
    assert digests(target.url) == digests(db.url)

    # The restored instance serves: the same token, deployments, audit trail, partitions.
    live = LiveServer(target.url)
    live.start()
    try:
        restored_clients = Clients(server=live, tokens=clients.tokens)
        for path in ("/api/v1/deployments", "/api/v1/audit?limit=500", "/api/v1/alerts"):
            with clients.as_role("admin") as before, restored_clients.as_role("admin") as after:
                assert ok_json(after.get(path)) == ok_json(before.get(path))
        with restored_clients.as_role("admin") as admin:
            audit_actions = {
                e["action"] for e in ok_json(admin.get("/api/v1/audit?limit=500"))["items"]
            }
        assert "backup.test" in audit_actions
    finally:
        live.stop()
    # The append-only triggers came back with the table.
    with live.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.execute(sa.text("DELETE FROM audit_events"))


def test_a_backup_is_consistent_while_writes_go_on(
    clients: Clients, db: Database, tmp_path: Path
) -> None:
    """The checksums describe exactly the rows in the dump, however busy the server is: the
    SQLite copy is one snapshot, and on PostgreSQL pg_dump reads the snapshot the checksums
    were taken in."""
    import threading

    stop = threading.Event()
    written = [0]

    def ingest() -> None:
        with clients.as_role("service") as service:
            while not stop.is_set():
                batch = [
                    {"name": "rps", "value": i, "environment": "staging", "source": "application"}
                    for i in range(50)
                ]
                ok_json(service.post("/api/v1/metrics", json={"metrics": batch}))
                written[0] += len(batch)

    writer = threading.Thread(target=ingest, daemon=True)
    writer.start()
    try:
        time.sleep(0.3)
        archive = tmp_path / "busy.tar"
        before = written[0]
        created = shipboard("backup", "create", "-o", str(archive), env=env_for(db, tmp_path))
        after = written[0]
    finally:
        stop.set()
        writer.join(timeout=30)
    assert created.returncode == 0, created.stderr
    report = verify.verify_backup(archive, scratch_url=db.url)
    backed_up = report.manifest.tables["monitoring_metrics"].rows
    assert after > before  # the server was busy all along
    # A batch in flight may have committed before it was counted.
    assert before <= backed_up <= after + 50


def backup_member(db: Database) -> str:
    return PG_MEMBER if db.backend == "postgres" else SQLITE_MEMBER


def test_restore_refuses_a_database_with_data_unless_forced(
    db: Database, databases: DatabaseFactory, tmp_path: Path
) -> None:
    archive = tmp_path / "b.tar"
    source = small_database(databases, db.backend)
    create.create_backup(source.url, output=archive)
    # The shared test database holds the seeded environments.
    refused = shipboard("backup", "restore", str(archive), env=env_for(db, tmp_path))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    target = databases.new(db.backend)
    restore.restore_backup(archive, target.url)
    with pytest.raises(Conflict, match="not empty"):
        restore.restore_backup(archive, target.url)
    # Forced: replaced, not added to.
    report = restore.restore_backup(archive, target.url, force=True)
    assert digests(target.url) == report.manifest.tables


@pytest.mark.postgres
def test_restore_into_a_database_in_use_says_so(
    databases: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = small_database(databases, "postgres")
    archive = tmp_path / "b.tar"
    create.create_backup(source.url, output=archive)
    monkeypatch.setattr(restore, "RESTORE_LOCK_WAIT_S", 1)
    # A server's open transaction holds a lock on a table.
    engine = source.engine(poolclass=sa.pool.NullPool)
    with engine.connect() as busy:
        busy.execute(sa.text("SELECT count(*) FROM environments"))
        with pytest.raises(Conflict, match="the database is in use"):
            restore.restore_backup(archive, source.url, force=True)
    engine.dispose()
    # Nothing was dropped.
    assert digests(source.url)["environments"].rows == 3


def test_progress_bars_for_a_person_only(databases: DatabaseFactory, tmp_path: Path) -> None:
    import pty

    source = small_database(databases, "sqlite")
    env = {**os.environ, "SHIPBOARD_DATABASE_URL": source.url, "SHIPBOARD_HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "shipboard", "backup", "create", "-o", str(tmp_path / "a.tar")]
    piped = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "checksums" not in piped.stderr
    # At a terminal: Rich draws each stage.
    leader, follower = pty.openpty()
    argv[-1] = str(tmp_path / "b.tar")
    process = subprocess.Popen(argv, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, shown
    assert b"checksums" in shown
    assert b"backup written" in shown


# --- damaged archives -------------------------------------------------------------------------


@pytest.fixture
def sqlite_archive(databases: DatabaseFactory, tmp_path: Path) -> Path:
    archive = tmp_path / "good.tar"
    create.create_backup(small_database(databases, "sqlite").url, output=archive)
    return archive


def _rewrite(archive: Path, target: Path, *, manifest: Any = None, dump: Any = None) -> Path:
    """A copy of ``archive`` with its manifest and/or dump bytes changed by the callables."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for member, original in members:
            change = manifest if member.name == "manifest.json" else dump
            data = original if change is None else change(original)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return target


def test_truncated_archives_fail_verification(sqlite_archive: Path, tmp_path: Path) -> None:
    data = sqlite_archive.read_bytes()
    with tarfile.open(sqlite_archive) as tar:
        dump = tar.getmember(SQLITE_MEMBER)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: dump.offset_data + dump.size // 2])
    with pytest.raises(InvalidInput, match="is truncated or damaged: unexpected end of data"):
        verify.verify_backup(cut)
    # The dump whole, the end of the archive missing: still a copy cut short.
    cut.write_bytes(data[: dump.offset_data + dump.size + 1])
    with pytest.raises(InvalidInput, match="end-of-archive marker is missing"):
        verify.verify_backup(cut)
    # Cut right after the manifest: the dump is missing altogether.
    cut.write_bytes(data[: dump.offset])
    with pytest.raises(InvalidInput, match=r"truncated: database\.sqlite\.gz is missing"):
        verify.verify_backup(cut)
    cut.write_bytes(data[:100])
    with pytest.raises(InvalidInput, match=r"truncated or damaged|not a Shipboard backup"):
        verify.verify_backup(cut)


def test_an_altered_byte_of_the_dump_fails_verification(
    sqlite_archive: Path, tmp_path: Path
) -> None:
    data = bytearray(sqlite_archive.read_bytes())
    with tarfile.open(sqlite_archive) as tar:
        dump = tar.getmember(SQLITE_MEMBER)
    data[dump.offset_data + dump.size // 2] ^= 0x01
    altered = tmp_path / "altered.tar"
    altered.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="does not match the SHA-256 in its manifest"):
        verify.verify_backup(altered)
    # The command says the same, with exit code 2 (the file named is wrong) and no traceback.
    result = shipboard("backup", "verify", str(altered), env={"SHIPBOARD_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert "does not match the SHA-256" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_altered_manifest_fails_verification(sqlite_archive: Path, tmp_path: Path) -> None:
    def one_more_user(raw: bytes) -> bytes:
        manifest = json.loads(raw)
        manifest["tables"]["users"]["rows"] += 1
        return json.dumps(manifest).encode()

    def other_checksum(raw: bytes) -> bytes:
        manifest = json.loads(raw)
        manifest["tables"]["environments"]["checksum"] = "0" * 64
        return json.dumps(manifest).encode()

    counted = _rewrite(sqlite_archive, tmp_path / "count.tar", manifest=one_more_user)
    with pytest.raises(InvalidInput, match="table users: 1 rows, the manifest says 2"):
        verify.verify_backup(counted)
    summed = _rewrite(sqlite_archive, tmp_path / "sum.tar", manifest=other_checksum)
    with pytest.raises(InvalidInput, match="table environments: content checksum"):
        verify.verify_backup(summed)
    garbled = _rewrite(sqlite_archive, tmp_path / "json.tar", manifest=lambda raw: raw[:-2])
    with pytest.raises(InvalidInput, match=r"manifest\.json is not valid JSON"):
        verify.verify_backup(garbled)
    # Same bytes, another database inside: the SHA-256 no longer matches.
    swapped = _rewrite(sqlite_archive, tmp_path / "swap.tar", dump=lambda raw: raw + b"\0")
    with pytest.raises(InvalidInput, match=r"holds \d+ bytes, the manifest says"):
        verify.verify_backup(swapped)
    with pytest.raises(InvalidInput, match="not a Shipboard backup"):
        verify.verify_backup(_rewrite_as_plain_file(tmp_path))


def _rewrite_as_plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path


@pytest.mark.postgres
def test_an_altered_postgres_archive_fails_verification(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    source = small_database(databases, "postgres")
    archive = tmp_path / "pg.tar"
    create.create_backup(source.url, output=archive)
    verify.verify_backup(archive, scratch_url=source.url)

    def fewer_environments(raw: bytes) -> bytes:
        manifest = json.loads(raw)
        manifest["tables"]["environments"]["rows"] = 2
        manifest["partitions"]["deployment_logs_default"] = 5
        return json.dumps(manifest).encode()

    altered = _rewrite(archive, tmp_path / "altered.tar", manifest=fewer_environments)
    with pytest.raises(InvalidInput) as failure:
        verify.verify_backup(altered, scratch_url=source.url)
    assert "table environments: 3 rows, the manifest says 2" in failure.value.detail
    assert "partition deployment_logs_default: 0 rows, the manifest says 5" in failure.value.detail
    # Its scratch database is gone again.
    engine = source.engine(poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert not conn.scalar(
            sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'shipboard_scratch_%'")
        )
    engine.dispose()


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    databases: DatabaseFactory, backend: str, tmp_path: Path
) -> None:
    source = small_database(databases, backend)
    env = {"SHIPBOARD_DATABASE_URL": source.url, "SHIPBOARD_HOME": str(tmp_path)}
    # /dev/full answers every write with ENOSPC.
    full = shipboard("backup", "create", "--output", "/dev/full", env=env)
    assert full.returncode == 1, full.stderr
    assert "backup not written: No space left on device" in full.stderr
    assert "Traceback" not in full.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)

    # A file-size limit fails the writes of a real file: no archive, no scratch files left.
    out = tmp_path / "backups"
    out.mkdir()
    limited = _limited(
        64 * 1024,
        [sys.executable, "-m", "shipboard", "backup", "create", "--output", str(out / "b.tar")],
        env={**os.environ, **env},
    )
    assert limited.returncode == 1, limited.stderr
    assert "backup not written" in limited.stderr
    assert "Traceback" not in limited.stderr
    assert list(out.iterdir()) == []


def _limited(
    max_bytes: int, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under a file-size limit: a write past it fails with EFBIG as a write to a
    full disk fails with ENOSPC (Python ignores SIGXFSZ, which would otherwise kill it)."""
    return subprocess.run(
        ["sh", "-c", f'ulimit -f {max_bytes // 512} && exec "$0" "$@"', *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_archive_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """The rename is the commit: a write that fails leaves neither the archive nor its
    partial file, and a previous archive of the same name stays as it was."""
    target = tmp_path / "b.tar"
    target.write_bytes(b"previous")
    script = (
        "import errno, sys\n"
        "from pathlib import Path\n"
        "from shipboard.ops.backup.archive import atomic_output\n"
        "try:\n"
        f"    with atomic_output(Path({str(target)!r})) as handle:\n"
        "        for _ in range(64):\n"
        "            handle.write(b'x' * 65536)\n"
        "except OSError as exc:\n"
        "    sys.exit(0 if exc.errno == errno.EFBIG else 3)\n"
        "sys.exit(4)\n"
    )
    done = _limited(1024 * 1024, [sys.executable, "-c", script])
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar"]


# --- scheduled backups ------------------------------------------------------------------------


def test_scheduled_backup_runs_once_across_nodes_and_prunes(
    clients: Clients, engine: Engine, tmp_path: Path
) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()
    for day in (1, 2, 3):
        (directory / f"shipboard-backup-202001{day:02d}T000000Z.tar").write_bytes(b"old")
    (directory / "notes.txt").write_text("not ours")
    nodes = [
        Schedule(
            engine,
            ops_tasks.scheduled(
                engine, backup_schedule="0 * * * *", backup_keep=2, backup_dir=directory
            ),
        )
        for _ in range(2)
    ]

    def fire(node: Schedule, now: datetime) -> bool:
        return node.run_if_due(node.task("ops.backup"), now=now) is not None

    start = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert not any(fire(node, start) for node in nodes)
    assert not any(fire(node, start + timedelta(minutes=10)) for node in nodes)
    # 10:00 fired: one node takes it, the other sees the claim.
    fired = [fire(node, start + timedelta(minutes=31)) for node in nodes]
    assert sorted(fired) == [False, True]
    for node in nodes:
        run = node.task("ops.backup").run
        assert isinstance(run, ops_tasks.ScheduledBackup)
        run.join(timeout=120)
    names = sorted(p.name for p in directory.iterdir())
    assert names[0] == "notes.txt"
    assert names[1] == "shipboard-backup-20200103T000000Z.tar"
    assert len(names) == 3
    verify.verify_backup(
        directory / names[2], scratch_url=engine.url.render_as_string(hide_password=False)
    )
    with clients.as_role("admin") as admin:
        claims = ok_json(admin.get("/api/v1/audit", params={"action": "backup.scheduled"}))["items"]
    assert [c["target_id"] for c in claims if c["target_id"].startswith("2026-11-26T10:00")]


def test_settings_refuse_a_bad_schedule() -> None:
    from pydantic import ValidationError

    from shipboard.config import Settings

    with pytest.raises(ValidationError, match="not a cron expression"):
        Settings(backup_schedule="every night")
    settings = Settings(backup_schedule="0 3 * * *", home=Path("/srv/shipboard"))
    assert settings.effective_backup_dir == Path("/srv/shipboard/backups")
    assert settings.backup_keep == 7


# --- checksums (pure) -------------------------------------------------------------------------


def test_checksums_do_not_depend_on_how_a_backend_renders_a_value() -> None:
    import uuid
    from decimal import Decimal

    # SQLite's stored text and PostgreSQL's values for the same row.
    some_id = uuid.uuid4()
    moment = datetime(2026, 11, 26, 7, 3, 30, 570731, tzinfo=UTC)
    sqlite_row = {
        "id": checksums.canonical_value(str(some_id), "plain"),
        "at": checksums.canonical_value("2026-11-26T07:03:30.570731+00:00", "plain"),
        "value": checksums.canonical_value(0.30000000000000004, "number"),
        "big": checksums.canonical_value(2, "number"),
        "ok": checksums.canonical_value(1, "bool"),
        "tags": checksums.canonical_value('{"b": 1e+20, "a": 1e-07, "c": 1.0, "n": null}', "json"),
        "none": checksums.canonical_value(None, "json"),
    }
    postgres_row = {
        "id": checksums.canonical_value(some_id, "plain"),
        "at": checksums.canonical_value(moment.astimezone(), "plain"),
        "value": checksums.canonical_value(Decimal("0.30000000000000004"), "number"),
        "big": checksums.canonical_value(Decimal("2.000"), "number"),
        "ok": checksums.canonical_value(True, "bool"),
        "tags": checksums.canonical_value(
            '{"a": 0.0000001, "b": 100000000000000000000, "c": 1.0, "n": null}', "json"
        ),
        "none": checksums.canonical_value(None, "json"),
    }
    assert checksums.row_hash(sqlite_row) == checksums.row_hash(postgres_row)
    # SQL NULL and a JSON null differ; so do a number and a string that reads alike.
    assert checksums.canonical_value("null", "json") != checksums.canonical_value(None, "json")
    assert checksums.canonical_value('{"a": 1}', "json") != checksums.canonical_value(
        '{"a": "1e0"}', "json"
    )
    assert checksums.canonical_number(Decimal("-0.0")) == checksums.canonical_number(0)
    # No rounding, however many digits PostgreSQL's numeric holds.
    long = "1234567890123456789012345678901234567890.5"
    assert checksums.canonical_number(Decimal(long)) == long
    assert (
        checksums.canonical_number(Decimal("100.00")) == checksums.canonical_number(1e2) == "1E+2"
    )
    # Order-independent: the same rows in another order give the same checksum.
    a, b = checksums.Digest(), checksums.Digest()
    rows = [{"id": i, "v": str(i)} for i in range(5)]
    for row in rows:
        a.add(row)
    for row in reversed(rows):
        b.add(row)
    assert a.result() == b.result()
    assert a.result().rows == 5


def test_the_postgres_password_never_reaches_argv() -> None:
    conninfo, env = pgtools.libpq_target(
        "postgresql://ship:p%40ss%20w0rd@db.example:5433/ship?sslmode=require"
    )
    assert "p@ss" not in conninfo
    assert "w0rd" not in conninfo
    assert conninfo == "postgresql://ship@db.example:5433/ship?sslmode=require"
    assert env["PGPASSWORD"] == "p@ss w0rd"
