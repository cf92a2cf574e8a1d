"""The instance's state as gauges of Shipboard's own ``/metrics``: queue, leases,
notifications, connection pool and database, read from the database when Prometheus scrapes.
The registry and the request-path instruments are :mod:`shipboard.core.telemetry`'s.

Queue, lease and database figures describe the whole instance, so every API process reports the
same values: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.environments.models import Environment
from shipboard.monitoring import forwarding
from shipboard.notifications.models import NotificationDelivery
from shipboard.ops import dbhealth

log = structlog.get_logger("shipboard.metrics")


class StateCollector:
    """Gauges read from the database (and this process) at scrape time; cheap queries only."""

    def __init__(self, engine: Engine, app_state: Any) -> None:
        self.engine = engine
        self.app_state = app_state

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        yield from self._process()
        up = GaugeMetricFamily("shipboard_db_up", "1 when the database answered this scrape")
        try:
            families = list(self._database())
            up.add_metric([], 1)
        except SQLAlchemyError as exc:
            # A scrape that fails as a whole would hide the other figures; say down instead.
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            families = []
            up.add_metric([], 0)
        yield up
        yield from families
        took = GaugeMetricFamily(
            "shipboard_metrics_collect_seconds", "Time spent reading the database for this scrape"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    # --- this process -------------------------------------------------------------------------

    def _process(self) -> Iterator[Metric]:
        # Two pools on PostgreSQL: the async engine's serves the requests on the event loop
        # (http/db.py), the sync engine's everything else.
        pools = {"sync": dbhealth.pool_usage(self.engine)}
        twin = getattr(self.app_state, "async_engine", None)
        if twin is not None:
            pools["async"] = dbhealth.pool_usage(twin[1].sync_engine)
        families = {
            "size": GaugeMetricFamily(
                "shipboard_db_pool_size", "Connections the pool keeps", labels=["pool"]
            ),
            "checked_out": GaugeMetricFamily(
                "shipboard_db_pool_checked_out", "Connections in use", labels=["pool"]
            ),
            "overflow": GaugeMetricFamily(
                "shipboard_db_pool_overflow", "Connections beyond the pool size", labels=["pool"]
            ),
            "max": GaugeMetricFamily(
                "shipboard_db_pool_max", "Most connections the pool opens", labels=["pool"]
            ),
        }
        for label, pool in pools.items():
            if pool is None:
                continue
            families["size"].add_metric([label], pool.size)
            families["checked_out"].add_metric([label], pool.checked_out)
            families["overflow"].add_metric([label], pool.overflow)
            families["max"].add_metric([label], pool.size + pool.max_overflow)
        yield from families.values()
        threads = getattr(self.app_state, "background", None) or {}
        alive = GaugeMetricFamily(
            "shipboard_background_thread_up",
            "1 while an in-process background thread runs",
            labels=["thread"],
        )
        for name, thread in threads.items():
            alive.add_metric([name], 1 if thread is not None and thread.is_alive() else 0)
        yield alive
        scheduler = getattr(self.app_state, "scheduler", None)
        if scheduler is not None:
            leader = GaugeMetricFamily(
                "shipboard_scheduler_leader",
                "1 when this process runs the periodic jobs (elected)",
            )
            leader.add_metric([], 1 if scheduler.election.leading else 0)
            yield leader

    # --- the instance -------------------------------------------------------------------------

    def _database(self) -> Iterator[Metric]:
        with self.engine.connect() as conn:
            if is_postgres(conn):
                # The scrape acts as the system: row-level security would hide the queue.
                conn.execute(
                    sa.text(
                        "SELECT set_config('shipboard.role', 'admin', true), "
                        "set_config('shipboard.user_id', 'system', true)"
                    )
                )
            yield from _queue(conn)
            yield from _notifications(conn)
            if getattr(self.app_state, "forwarding", None) is not None:
                yield from _remote_write(conn)
            if is_postgres(conn):
                yield from _postgres(conn)
            else:
                yield from _sqlite(conn, self.engine.url.database or "")


def _queue(conn: sa.Connection) -> Iterator[Metric]:
    now = utcnow()
    pending = conn.execute(
        sa.select(
            DeploymentConfig.environment,
            sa.func.count(),
            sa.func.min(DeploymentConfig.created_at),
        )
        .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(DeploymentConfig.status == "pending", DeploymentRun.managed.is_(True))
        .group_by(DeploymentConfig.environment)
    ).all()
    depth = GaugeMetricFamily(
        "shipboard_deployment_queue_depth",
        "Deployments waiting for a worker (pending, run by Shipboard)",
        labels=["environment"],
    )
    oldest = GaugeMetricFamily(
        "shipboard_deployment_queue_oldest_age_seconds",
        "Age of the oldest deployment waiting for a worker (0 when none waits)",
    )
    # Every environment, waiting or not: a series that vanishes at zero breaks alert rules.
    counts = dict.fromkeys(conn.scalars(sa.select(Environment.name)), 0)
    first = None
    for environment, count, created in pending:
        counts[environment] = count
        if created is not None and (first is None or created < first):
            first = created
    for environment, count in sorted(counts.items()):
        depth.add_metric([environment], count)
    oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0.0)
    yield depth
    yield oldest
    live, expired = conn.execute(
        sa.select(
            sa.func.count().filter(DeploymentRun.lease_expires_at >= now),
            sa.func.count().filter(DeploymentRun.lease_expires_at < now),
        )
        .join(DeploymentConfig, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(
            DeploymentConfig.status.in_(("building", "deploying")),
            DeploymentRun.lease_owner.is_not(None),
        )
    ).one()
    leases = GaugeMetricFamily(
        "shipboard_worker_leases",
        "Running deployments by the state of their worker's lease (expired: the worker is gone "
        "and no other has reaped it yet)",
        labels=["state"],
    )
    leases.add_metric(["active"], live)
    leases.add_metric(["expired"], expired)
    yield leases


def _remote_write(conn: sa.Connection) -> Iterator[Metric]:
    status = forwarding.queue_status(Session(bind=conn))
    for name, text, value in (
        (
            "shipboard_remote_write_queue_batches",
            "Batches waiting for the metrics store",
            status.batches,
        ),
        (
            "shipboard_remote_write_queue_points",
            "Points waiting for the metrics store",
            status.points,
        ),
        (
            "shipboard_remote_write_queue_bytes",
            "Encoded bytes waiting for the metrics store (SHIPBOARD_REMOTE_WRITE_QUEUE_MB caps it)",
            status.size,
        ),
        (
            "shipboard_remote_write_queue_oldest_age_seconds",
            "Age of the oldest batch waiting for the metrics store (0 when none waits)",
            status.oldest_age_s,
        ),
        (
            "shipboard_remote_write_dropped_points_last_hour",
            "Points the metrics store refused "
            "for good (4xx) in the last hour; the server log has its reasons",
            status.dropped_last_hour,
        ),
        (
            "shipboard_remote_write_blocked",
            "1 while the metrics store refuses Shipboard itself (401, 403, 404 or 407 to the "
            "oldest batch: wrong credentials, URL or tenant); nothing is forwarded and the queue "
            "grows until the setting is fixed",
            int(status.blocked),
        ),
        (
            "shipboard_remote_write_last_error_status",
            "HTTP status of the oldest waiting batch's last failed attempt (0: none, or no answer)",
            status.last_error_status,
        ),
    ):
        family = GaugeMetricFamily(name, text)
        family.add_metric([], value)
        yield family


def _notifications(conn: sa.Connection) -> Iterator[Metric]:
    # The index on (status, next_attempt_at) answers this without reading sent rows.
    counts = dict(
        conn.execute(
            sa.select(NotificationDelivery.status, sa.func.count())
            .where(NotificationDelivery.status.in_(("pending", "failed")))
            .group_by(NotificationDelivery.status)
        ).all()
    )
    recent = conn.scalar(
        sa.select(sa.func.count()).where(
            NotificationDelivery.status == "failed",
            NotificationDelivery.created_at >= utcnow() - timedelta(hours=1),
        )
    )
    deliveries = GaugeMetricFamily(
        "shipboard_notification_deliveries",
        "Notification deliveries waiting to be sent (pending) or given up (failed)",
        labels=["status"],
    )
    for status in ("pending", "failed"):
        deliveries.add_metric([status], counts.get(status, 0))
    yield deliveries
    last_hour = GaugeMetricFamily(
        "shipboard_notification_failures_last_hour",
        "Deliveries created in the last hour that gave up",
    )
    last_hour.add_metric([], recent or 0)
    yield last_hour


def _postgres(conn: sa.Connection) -> Iterator[Metric]:
    today = utcnow().date()
    usage = dbhealth.connections(conn)
    used = GaugeMetricFamily(
        "shipboard_db_connections", "Client connections to the PostgreSQL server"
    )
    used.add_metric([], usage.used)
    yield used
    maximum = GaugeMetricFamily("shipboard_db_max_connections", "PostgreSQL's max_connections")
    maximum.add_metric([], usage.max)
    yield maximum
    size = GaugeMetricFamily("shipboard_db_size_bytes", "Size of the database")
    size.add_metric([], dbhealth.database_bytes(conn))
    yield size
    dead = GaugeMetricFamily(
        "shipboard_db_dead_rows", "Dead tuples not yet vacuumed, per table", labels=["table"]
    )
    for table, rows in dbhealth.dead_rows_by_table(conn):
        dead.add_metric([table], rows)
    yield dead
    ahead = GaugeMetricFamily(
        "shipboard_db_partition_months_ahead",
        "Months after the current one that have partitions (-1: not even the current one)",
        labels=["table"],
    )
    default = GaugeMetricFamily(
        "shipboard_db_partition_default_rows",
        "Rows in the default partition (months that had no partition)",
        labels=["table"],
    )
    for part in dbhealth.partition_coverage(conn, today=today):
        ahead.add_metric([part.table], part.months_ahead)
        default.add_metric([part.table], part.default_rows)
    yield ahead
    yield default
    repl = dbhealth.replication(conn)
    lag = GaugeMetricFamily(
        "shipboard_db_replication_lag_seconds",
        "Replay lag per replica (on a primary) or of this server (on a replica)",
        labels=["replica"],
    )
    if repl.is_replica and repl.replay_delay_s is not None:
        lag.add_metric(["self"], repl.replay_delay_s)
    for replica in repl.replicas:
        if replica.replay_lag_s is not None:
            lag.add_metric([replica.name], replica.replay_lag_s)
    yield lag


def _sqlite(conn: sa.Connection, path: str) -> Iterator[Metric]:
    lite = dbhealth.sqlite_health(conn, path)
    for name, text, value in (
        ("shipboard_db_size_bytes", "Size of the database file", lite.file_bytes),
        ("shipboard_db_wal_bytes", "Size of the write-ahead log", lite.wal_bytes),
        ("shipboard_db_pages", "Pages in the database file", lite.page_count),
        ("shipboard_db_freelist_pages", "Unused pages VACUUM would return", lite.freelist_count),
        ("shipboard_db_page_size_bytes", "Page size", lite.page_size),
    ):
        family = GaugeMetricFamily(name, text)
        family.add_metric([], value)
        yield family
