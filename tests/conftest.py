"""Test plumbing: real databases (SQLite files and a PostgreSQL server) and a real HTTP server.

PostgreSQL tests use ``SHIPBOARD_TEST_POSTGRES_URL`` (default: the local server). Each run
creates its own databases and drops them afterwards. Without a server they skip, except under
``CI=true``, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine, make_url

from shipboard.app import create_app
from shipboard.audit.service import AuditContext
from shipboard.auth import service as auth
from shipboard.auth.schemas import UserCreate
from shipboard.config import Settings
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments import cache as settings_cache
from shipboard.environments.service import seed_environments

PG_BASE_URL = os.environ.get(
    "SHIPBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SYSTEM = AuditContext(actor="tests", actor_role="admin")
IN_CI = os.environ.get("CI", "").lower() == "true"

DATA_TABLES = (
    "notification_deliveries",
    "notification_groups",
    "notification_channels",
    "silences",
    "alerts",
    "alert_rules",
    "idempotency_keys",
    "audit_events",
    "integration_deliveries",
    "integration_deployments",
    "integrations",
    "deployment_runs",
    "deployment_logs",
    "performance_regressions",
    "performance_metrics",
    "finding_occurrences",
    "finding_identities",
    "security_findings",
    "security_scans",
    "monitoring_metrics",
    "otlp_cumulative_state",
    "deployment_configs",
    "web_sessions",
    "api_tokens",
    "users",
    "environments",
)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SHIPBOARD_LOG_LEVEL", "warning")


_pg_checked: list[str | None] = []


def _postgres_unavailable() -> str | None:
    if not _pg_checked:
        try:
            engine = create_db_engine(PG_BASE_URL, poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_checked.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "no server to test against"
            _pg_checked.append(f"PostgreSQL at {PG_BASE_URL} unavailable: {type(exc).__name__}")
    return _pg_checked[0]


def _require_postgres() -> None:
    reason = _postgres_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


@dataclass
class Database:
    backend: str
    url: str

    def engine(self, **kwargs: object) -> Engine:
        return create_db_engine(self.url, **kwargs)  # type: ignore[arg-type]


class DatabaseFactory:
    """Creates empty databases on demand and removes them at the end of the session."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self.pg_names: list[str] = []

    def new(self, backend: str) -> Database:
        if backend == "sqlite":
            return Database("sqlite", f"sqlite:///{self.tmp_dir}/{uuid.uuid4().hex}.db")
        _require_postgres()
        name = f"shipboard_test_{uuid.uuid4().hex[:12]}"
        admin = create_db_engine(
            PG_BASE_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.pg_names.append(name)
        url = make_url(create_db_engine(PG_BASE_URL).url).set(database=name)
        return Database("postgres", url.render_as_string(hide_password=False))

    def drop_all(self) -> None:
        if not self.pg_names:
            return
        admin = create_db_engine(
            PG_BASE_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            for name in self.pg_names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(str(tmp_path_factory.mktemp("db")))
    yield factory
    factory.drop_all()


BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db(databases: DatabaseFactory, backend: str) -> Database:
    """A new, empty database of the given backend."""
    return databases.new(backend)


_migrated: dict[str, Database] = {}


@pytest.fixture
def db(databases: DatabaseFactory, backend: str) -> Iterator[Database]:
    """A migrated, seeded database shared per backend; emptied and re-seeded after each test."""
    if backend not in _migrated:
        database = databases.new(backend)
        migrate.upgrade(database.url)
        _migrated[backend] = database
    database = _migrated[backend]
    engine = database.engine()
    with system_transaction(engine) as session:
        seed_environments(session)
    try:
        yield database
    finally:
        _truncate(engine)
        engine.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(DATA_TABLES)} CASCADE"))
        else:
            # The append-only trigger refuses DELETE on audit_events; tests count deltas there.
            for table in DATA_TABLES:
                if table != "audit_events":
                    conn.execute(sa.text(f"DELETE FROM {table}"))
    # Raw SQL bypasses the ORM events that clear the settings cache (environments/cache.py).
    settings_cache.invalidate()


@pytest.fixture
def engine(db: Database) -> Iterator[Engine]:
    eng = db.engine()
    yield eng
    eng.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """Shipboard served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A home this server made is removed when it stops; one passed in belongs to the caller.
        self._own_home = None if "home" in overrides else tempfile.mkdtemp(prefix="shipboard-home-")
        overrides.setdefault("home", self._own_home)
        settings = Settings(database_url=database_url, log_level="warning", **overrides)
        self.settings = settings
        self.engine = create_db_engine(database_url)
        self.app = create_app(settings, engine=self.engine)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.engine.dispose()
        if self._own_home is not None:
            shutil.rmtree(self._own_home, ignore_errors=True)


_servers: dict[str, LiveServer] = {}


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for server in _servers.values():
        server.stop()


@pytest.fixture
def server(db: Database) -> LiveServer:
    if db.backend not in _servers:
        live = LiveServer(db.url)
        live.start()
        _servers[db.backend] = live
    return _servers[db.backend]


@dataclass
class Clients:
    """HTTP clients for one user per role, plus an anonymous one."""

    server: LiveServer
    tokens: dict[str, str]

    def as_role(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.server.base_url, headers=headers, timeout=30)


@pytest.fixture
def clients(server: LiveServer, engine: Engine) -> Clients:
    tokens: dict[str, str] = {}
    with system_transaction(engine) as session:
        for role in ("viewer", "deployer", "service", "admin"):
            created = auth.create_user(
                session, data=UserCreate(name=f"{role}-user", role=role), audit_context=SYSTEM
            )
            tokens[role] = created.token
    return Clients(server=server, tokens=tokens)


@pytest.fixture
def make_user(engine: Engine) -> Callable[[str, str], str]:
    def _make(name: str, role: str) -> str:
        with system_transaction(engine) as session:
            data = UserCreate(name=name, role=role)  # type: ignore[arg-type]
            return auth.create_user(session, data=data, audit_context=SYSTEM).token

    return _make


@pytest.fixture
def worker(server: LiveServer, engine: Engine) -> Iterator[Any]:
    """A pipeline worker thread against the test database, stopped after the test."""
    from shipboard.pipelines.worker import Worker, start_in_thread

    instance = Worker(engine, server.app.state.keyring, poll_s=0.05, lease_s=3)
    thread, stop = start_in_thread(instance)
    yield instance
    stop.set()
    thread.join(timeout=30)


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)
        value = predicate()
    return value


class Receiver:
    """A local HTTP receiver that records requests and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((dict(self.headers), body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", _free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[Any]]]:
    """A real SMTP server on loopback (aiosmtpd): yields its port and the envelopes received."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()


class PrometheusServer:
    """A real Prometheus (Debian's ``prometheus``) on a loopback port, with its own storage.

    It scrapes what ``scrape_configs`` (YAML text) says and exposes its own ``/metrics``; the
    process is stopped by its PID."""

    BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"

    def __init__(self, directory: str, scrape_configs: str = "") -> None:
        import subprocess

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(directory, f"prometheus-{self.port}.yml")
        with open(config, "w") as out:
            out.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
            out.write(f"scrape_configs:\n{scrape_configs}" if scrape_configs else "")
        self.log = open(os.path.join(directory, f"prometheus-{self.port}.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                self.BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(directory, f'tsdb-{self.port}')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start; see {self.log.name}")
            time.sleep(0.1)

    def version(self) -> str:
        info = httpx.get(f"{self.url}/api/v1/status/buildinfo", timeout=5).json()
        return str(info["data"]["version"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 - it did not stop on SIGTERM: end it
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Any) -> Iterator[Callable[..., PrometheusServer]]:
    """Start real Prometheus servers (``prometheus(scrape_configs_yaml)``); all stop after."""
    if not os.path.exists(PrometheusServer.BINARY):
        if IN_CI:
            pytest.fail("prometheus is not installed (CI=true: apt-get install -y prometheus)")
        pytest.skip("prometheus is not installed")
    started: list[PrometheusServer] = []

    def start(scrape_configs: str = "") -> PrometheusServer:
        server = PrometheusServer(str(tmp_path), scrape_configs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
