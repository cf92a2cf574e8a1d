"""Scheduled monitoring reports and the metrics store: the schedule only queues a job per due
report; the job asks the store with no transaction open, then queues the deliveries and ends
itself in one short transaction. So a store that hangs holds no other writer up, and each due
report goes out exactly once — across two nodes, a worker that dies before its commit, and one
that dies after it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.promql import PromStore, StoreSettings
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.jobs import queue
from shipboard.jobs.models import Job
from shipboard.jobs.schedule import Schedule
from shipboard.notifications.models import NotificationDelivery
from shipboard.reports import tasks as report_tasks
from tests.support.databases import Database
from tests.support.factories import create_channel
from tests.support.live import Clients, Receiver, VictoriaMetrics
from tests.support.promstore import ProbingProxy, remote_write, writer_blocked

DAY = datetime(2026, 12, 7, tzinfo=UTC)
REPORT = {"kind": "monitoring", "cron": "0 9 * * *", "channels": ["hook"], "period": "1d"}


@pytest.fixture
def due(clients: Clients, engine: Engine, receiver: Receiver) -> Schedule:
    """A daily 09:00 monitoring report for production to the channel ``hook``, and a schedule
    whose clock started at 08:59 (the next look, at 09:00 or later, finds it due)."""
    with clients.as_role("admin") as admin:
        create_channel(admin, "hook", receiver.url)
        admin.patch(
            "/api/v1/environments/production",
            json={"config": {"reports": [REPORT]}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
    schedule = Schedule(engine, report_tasks.scheduled())
    assert _look(schedule, DAY + timedelta(hours=8, minutes=59)) == 0
    return schedule


def _look(schedule: Schedule, now: datetime) -> object:
    ran = schedule.run_if_due(schedule.task("reports.scheduled"), now=now)
    return None if ran is None else ran.result


def _deliveries(engine: Engine) -> list[dict[str, Any]]:
    with system_transaction(engine) as session:
        return [
            d.payload
            for d in session.scalars(
                sa.select(NotificationDelivery).where(NotificationDelivery.event.like("report.%"))
            )
        ]


def _jobs(engine: Engine) -> list[Job]:
    with system_transaction(engine) as session:
        return list(session.scalars(sa.select(Job).where(Job.kind == report_tasks.JOB)))


class HangingStore:
    """A loopback "store" that accepts connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_a_hanging_store_holds_up_no_writer_and_the_report_still_goes_out(
    db: Database, engine: Engine, due: Schedule
) -> None:
    hang_s = 2.0
    hanging = HangingStore()
    store = PromStore(StoreSettings(url=hanging.url, timeout_s=hang_s))
    kinds = report_tasks.jobs(metrics_store=store)
    try:
        started = time.monotonic()
        assert _look(due, DAY + timedelta(hours=9, seconds=3)) == 1
        assert time.monotonic() - started < 1.0  # the claim does not ask the store
        assert not hanging.accepted.is_set()

        for attempt in (1, 2, 3):
            hanging.accepted.clear()
            worker = threading.Thread(
                target=queue.run_one, args=(engine, kinds), kwargs={"worker": "w"}
            )
            worker.start()
            assert hanging.accepted.wait(5), "the job did not ask the store"
            # Mid-hang: nothing sits in a transaction, and another writer gets through at once.
            assert writer_blocked(db.url) is None
            began = time.monotonic()
            with system_transaction(engine) as session:
                session.execute(sa.update(Job).where(Job.kind == "nothing").values(last_error="x"))
            assert time.monotonic() - began < hang_s / 4
            assert worker.is_alive(), "the store answered before the writer was measured"
            worker.join(timeout=hang_s + 10)
            (job,) = _jobs(engine)
            if attempt < 3:
                # Asked again later (the queue's backoff), nothing sent yet.
                assert (job.status, job.attempts, _deliveries(engine)) == ("queued", attempt, [])
                with system_transaction(engine) as session:
                    session.execute(sa.update(Job).values(run_after=utcnow()))
    finally:
        store.close()
        hanging.close()
    # The last attempt sends the report, saying why it has no metrics.
    assert job.status == "done"
    (payload,) = _deliveries(engine)
    report = payload["report"]
    assert (report["source"], report["metrics"]) == ("store", [])
    assert "could not be reached (ReadTimeout)" in report["store_error"]
    assert "could not be reached (ReadTimeout)" in payload["attachments"]["html"]


def test_each_due_report_goes_out_once(engine: Engine, due: Schedule) -> None:
    kinds = report_tasks.jobs()
    at_nine = DAY + timedelta(hours=9, seconds=2)
    # Two nodes look at the same due time: one job.
    other_node = Schedule(engine, report_tasks.scheduled())
    assert _look(due, at_nine) == 1
    assert _look(other_node, at_nine) is None
    # Worker A claims the job and dies before its commit; the process restarts (a schedule of
    # its own, later in the same minute): the firing is not queued again.
    lost = queue.claim(engine, [report_tasks.JOB], worker="a", lease_s=0.2)
    assert lost is not None
    restarted = Schedule(engine, report_tasks.scheduled())
    assert _look(restarted, at_nine + timedelta(seconds=30)) == 0
    assert not queue.run_one(engine, kinds, worker="b")  # A's lease still holds
    time.sleep(0.3)
    assert queue.reap(engine, kinds) == 1
    assert queue.run_one(engine, kinds, worker="b")
    (payload,) = _deliveries(engine)
    assert (payload["event"], payload["report"]["source"]) == ("report.monitoring", "embedded")
    # A comes back and finishes its run: the job is B's, A writes nothing.
    assert report_tasks.deliver_report(engine, lost) == 0
    assert len(_deliveries(engine)) == 1

    # The next day's report: its worker commits, then dies before the queue hears it ended.
    assert _look(restarted, at_nine + timedelta(days=1)) == 1
    claimed = queue.claim(engine, [report_tasks.JOB], worker="c", lease_s=0.2)
    assert claimed is not None
    assert report_tasks.deliver_report(engine, claimed) == 1
    time.sleep(0.3)
    assert queue.reap(engine, kinds) == 0  # done with its delivery: nothing to redo
    assert not queue.run_one(engine, kinds, worker="d")
    assert len(_deliveries(engine)) == 2
    assert sorted(j.status for j in _jobs(engine)) == ["done", "done"]


def test_the_report_reads_a_real_store_with_no_transaction_open(
    db: Database, engine: Engine, due: Schedule, victoria_metrics: VictoriaMetrics
) -> None:
    now = time.time()
    for minute in range(10):
        remote_write(
            victoria_metrics.url, "checkout_latency_ms", 100 + minute, at=now - 60 * minute
        )
    victoria_metrics.flush()
    proxy = ProbingProxy(victoria_metrics.url, lambda: writer_blocked(db.url))
    store = PromStore(StoreSettings(url=proxy.url))
    try:
        assert _look(due, DAY + timedelta(hours=9, seconds=1)) == 1
        assert proxy.probes == []
        assert queue.run_one(engine, report_tasks.jobs(metrics_store=store), worker="w")
    finally:
        store.close()
        proxy.stop()
    assert proxy.probes
    assert set(proxy.probes) == {None}  # every store query found the database free
    (payload,) = _deliveries(engine)
    report = payload["report"]
    assert (report["source"], report["store_error"]) == ("store", None)
    (metric,) = report["metrics"]
    assert (metric["name"], metric["points"], metric["min"], metric["max"]) == (
        "checkout_latency_ms",
        10,
        100,
        109,
    )
