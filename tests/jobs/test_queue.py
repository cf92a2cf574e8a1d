"""The job runtime's queue (``jobs/queue.py``): one claim-and-lease loop over one jobs table."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.jobs import queue
from shipboard.jobs.models import Job


def _enqueue(engine: Engine, n: int = 1, **kwargs: Any) -> None:
    with system_transaction(engine) as session:
        for i in range(n):
            queue.enqueue(session, "test.job", {"n": i}, **kwargs)


def _jobs(engine: Engine) -> list[Job]:
    with system_transaction(engine) as session:
        return list(session.scalars(sa.select(Job).order_by(Job.created_at)))


def test_a_lapsed_lease_is_taken_by_another_worker(engine: Engine) -> None:
    _enqueue(engine)
    # Worker A claims and dies: it never renews nor finishes.
    lost = queue.claim(engine, ["test.job"], worker="a", lease_s=0.2)
    assert lost is not None
    ran: list[tuple[str, int]] = []
    kind = queue.JobKind(
        "test.job", run=lambda _engine, claimed: ran.append((claimed.worker, claimed.attempt))
    )
    assert not queue.run_one(engine, [kind], worker="b")  # A's lease still holds
    time.sleep(0.3)
    assert queue.reap(engine, [kind]) == 1
    assert queue.run_one(engine, [kind], worker="b")
    assert ran == [("b", 2)]
    (job,) = _jobs(engine)
    assert (job.status, job.attempts, job.lease_owner) == ("done", 2, None)
    # A comes back: its finish changes nothing, the job is B's.
    queue.finish(engine, lost, error="late")
    assert _jobs(engine)[0].status == "done"


def test_a_running_job_keeps_its_lease(engine: Engine) -> None:
    """The worker renews while it runs: a job longer than its lease is not taken for lost."""
    _enqueue(engine)
    reaped: list[int] = []

    def slow(eng: Engine, _claimed: queue.Claimed) -> None:
        time.sleep(0.8)
        reaped.append(queue.reap(eng, [kind]))

    kind = queue.JobKind("test.job", run=slow)
    assert queue.run_one(engine, [kind], worker="a", lease_s=0.3)
    assert reaped == [0]
    assert _jobs(engine)[0].status == "done"


def test_a_job_given_up_after_its_attempts_tells_its_kind(engine: Engine) -> None:
    _enqueue(engine, max_attempts=2)
    given_up: list[tuple[dict[str, Any], str]] = []

    def give_up(_session: Session, payload: dict[str, Any], why: str) -> None:
        given_up.append((payload, why))

    def boom(_engine: Engine, _claimed: queue.Claimed) -> None:
        raise RuntimeError("scanner exploded")

    kind = queue.JobKind("test.job", run=boom, give_up=give_up)
    assert queue.run_one(engine, [kind], worker="a")
    (job,) = _jobs(engine)
    assert job.status == "queued"  # tried again, after a backoff
    assert not queue.run_one(engine, [kind], worker="a")
    with system_transaction(engine) as session:
        session.execute(sa.update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
    # The second attempt's worker is lost: reaped, and that was the last attempt.
    assert queue.claim(engine, ["test.job"], worker="b", lease_s=0.1) is not None
    time.sleep(0.2)
    assert queue.reap(engine, [kind]) == 1
    (job,) = _jobs(engine)
    assert job.status == "failed"
    assert given_up == [({"n": 0}, "worker b lost (lease lapsed)")]


def test_many_workers_claim_each_job_once(engine: Engine) -> None:
    _enqueue(engine, 12)
    ran: list[int] = []
    lock = threading.Lock()

    def record(_engine: Engine, claimed: queue.Claimed) -> None:
        with lock:
            ran.append(claimed.payload["n"])

    kind = queue.JobKind("test.job", run=record)
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        barrier.wait()
        while queue.run_one(engine, [kind], worker=name):
            pass

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(ran) == list(range(12))
    assert {job.status for job in _jobs(engine)} == {"done"}


def test_a_job_exists_only_if_its_transaction_committed(engine: Engine) -> None:
    class Abort(Exception):
        pass

    try:
        with system_transaction(engine) as session:
            queue.enqueue(session, "test.job", {})
            raise Abort
    except Abort:
        pass
    assert _jobs(engine) == []


def test_a_handler_commits_its_writes_with_the_jobs_end_exactly_once(engine: Engine) -> None:
    """``complete``: the handler's writes and the job's end commit together, and only while the
    job is still its worker's."""
    _enqueue(engine)
    lost = queue.claim(engine, ["test.job"], worker="a", lease_s=0.2)
    assert lost is not None
    time.sleep(0.3)
    assert queue.reap(engine, [queue.JobKind("test.job", run=lambda *_: None)]) == 1
    taken = queue.claim(engine, ["test.job"], worker="b", lease_s=30)
    assert taken is not None
    with system_transaction(engine) as session:
        assert not queue.complete(session, lost)  # A was reaped: it must write nothing
    assert _jobs(engine)[0].status == "running"
    with system_transaction(engine) as session:
        assert queue.complete(session, taken)
    queue.finish(engine, taken)  # the queue's own end afterwards changes nothing
    (job,) = _jobs(engine)
    assert (job.status, job.attempts, job.lease_owner, job.last_error) == ("done", 2, None, None)
    with system_transaction(engine) as session:
        assert not queue.complete(session, taken)  # done already: not twice
