"""Test plumbing as fixtures: real databases (SQLite files and a PostgreSQL server) and a real
HTTP server. The classes behind them live in ``tests/support/``, which test modules import.

PostgreSQL tests use ``SHIPBOARD_TEST_POSTGRES_URL`` (default: the local server). Each run
creates its own databases and drops them afterwards. Without a server they skip, except under
``CI=true``, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.db import migrate
from shipboard.db.engine import system_transaction
from shipboard.environments import cache as settings_cache
from shipboard.environments.service import seed_environments
from tests.support.databases import IN_CI, Database, DatabaseFactory
from tests.support.hostile import HostileStore
from tests.support.live import (
    Clients,
    LiveServer,
    PrometheusServer,
    Receiver,
    VictoriaMetrics,
    free_port,
)
from tests.support.promstore import Store
from tests.support.users import role_tokens, user_token

DATA_TABLES = (
    "job_schedules",
    "jobs",
    "notification_deliveries",
    "notification_groups",
    "notification_channels",
    "silences",
    "external_alerts",
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
    "remote_write_queue",
    "storage_quota_alerts",
    "deployment_configs",
    "web_sessions",
    "api_tokens",
    "users",
    "environments",
)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SHIPBOARD_LOG_LEVEL", "warning")


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


@pytest.fixture
def serve(db: Database) -> Iterator[Callable[..., LiveServer]]:
    """Start Shipboard servers with settings of the test's own (``serve(prometheus_url=…)``)
    on the test's database; all stop after."""
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        live = LiveServer(db.url, **overrides)
        live.start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def clients(server: LiveServer, engine: Engine) -> Clients:
    with system_transaction(engine) as session:
        tokens = role_tokens(session)
    return Clients(server=server, tokens=tokens)


@pytest.fixture
def make_user(engine: Engine) -> Callable[[str, str], str]:
    def _make(name: str, role: str) -> str:
        return user_token(engine, role, name)

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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def hostile_store() -> Iterator[HostileStore]:
    """A loopback metrics store that answers what the test tells it (tests/support/hostile.py)."""
    store = HostileStore()
    yield store
    store.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[Any]]]:
    """A real SMTP server on loopback (aiosmtpd): yields its port and the envelopes received."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()


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


@pytest.fixture
def victoria_metrics(tmp_path: Any) -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics for the remote-write and PromQL tests; stopped after."""
    if not os.path.exists(VictoriaMetrics.BINARY):
        if IN_CI:
            pytest.fail("victoria-metrics is not installed (CI=true: apt-get install it)")
        pytest.skip("victoria-metrics is not installed")
    server = VictoriaMetrics(str(tmp_path))
    yield server
    server.stop()


@pytest.fixture(params=["victoria-metrics", "prometheus"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each real Prometheus-compatible store in turn, as tests write to and read from it."""
    if request.param == "prometheus":
        server = request.getfixturevalue("prometheus")()
        return Store(url=server.url, flush=lambda: None)  # searchable once written
    vm = request.getfixturevalue("victoria_metrics")
    return Store(url=vm.url, flush=vm.flush)


@pytest.fixture
def victoria_metrics_auth(tmp_path: Any) -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics that wants basic auth (user ``shipboard``, password ``right``)."""
    if not os.path.exists(VictoriaMetrics.BINARY):
        if IN_CI:
            pytest.fail("victoria-metrics is not installed (CI=true: apt-get install it)")
        pytest.skip("victoria-metrics is not installed")
    server = VictoriaMetrics(str(tmp_path), basic_auth=("shipboard", "right"))
    yield server
    server.stop()
