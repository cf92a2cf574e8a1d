"""Environment settings read by ingest are cached per process (environments/cache.py): a write
in the same process is seen by the next request, and another process sees it within a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shipboard.db.engine import system_transaction
from shipboard.environments import cache
from shipboard.monitoring.schemas import POINTS
from shipboard.monitoring.service import ingest_metrics
from tests.support.databases import Database
from tests.support.live import Clients, free_port, wait_for


def _point(environment: str = "staging") -> dict[str, Any]:
    return {
        "name": "cache_probe",
        "value": 1.0,
        "environment": environment,
        "source": "test",
        "timestamp": datetime.now(UTC).isoformat(),
    }


@pytest.fixture
def environment_queries(engine: Engine) -> Iterator[list[str]]:
    """Every statement this engine runs against the environments table."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM environments" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_ingest_reads_environment_names_once_a_second(
    engine: Engine, environment_queries: list[str]
) -> None:
    cache.invalidate()
    point = POINTS.validate_python([_point()])[0]
    for _ in range(5):
        with system_transaction(engine) as session:
            assert ingest_metrics(session, metrics=[point]) == 1
    assert len(environment_queries) == 1
    time.sleep(cache.TTL_S + 0.05)
    with system_transaction(engine) as session:
        ingest_metrics(session, metrics=[point])
    assert len(environment_queries) == 2


def test_a_write_in_this_process_is_seen_by_the_next_request(clients: Clients) -> None:
    """The ingest budget is cached; lowering it through the API applies to the very next
    batch, with no wait for the cache to expire."""
    with clients.as_role("service") as service, clients.as_role("admin") as admin:
        for _ in range(3):
            assert service.post("/api/v1/metrics", json={"metrics": [_point()]}).status_code == 200
        patched = admin.patch(
            "/api/v1/environments/staging", json={"limits": {"api_rate_limit": 1}}
        )
        assert patched.status_code == 200, patched.text
        first = service.post("/api/v1/metrics", json={"metrics": [_point()]})
        assert first.status_code == 200, first.text
        refused = service.post("/api/v1/metrics", json={"metrics": [_point()]})
        assert refused.status_code == 429, refused.text


def test_a_transaction_that_changed_an_environment_reads_it_fresh(engine: Engine) -> None:
    from shipboard.environments import repository
    from shipboard.environments.service import rate_limit_per_minute

    cache.invalidate()
    with system_transaction(engine) as session:
        assert rate_limit_per_minute(session, name="staging") is None  # now cached
        staging = repository.get(session, "staging")
        assert staging is not None
        staging.limits = {**(staging.limits or {}), "api_rate_limit": 7}
        session.flush()
        assert rate_limit_per_minute(session, name="staging") == 7
    with system_transaction(engine) as session:
        assert rate_limit_per_minute(session, name="staging") == 7


@pytest.fixture
def other_process(db: Database, tmp_path: Path) -> Iterator[str]:
    """``shipboard serve --no-worker`` in a process of its own on the same database."""
    port = free_port()
    env = {
        **os.environ,
        "SHIPBOARD_HOME": str(tmp_path / "home"),
        "SHIPBOARD_DATABASE_URL": db.url,
        "SHIPBOARD_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(f"{base}/readyz"), timeout=60)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_another_process_sees_a_change_within_a_second(
    clients: Clients, other_process: str, engine: Engine
) -> None:
    """This process lowers staging's budget to one batch a minute; the other process, which
    has the old (unlimited) setting cached and its own counters, refuses within a second."""
    headers = {"Authorization": f"Bearer {clients.tokens['service']}"}
    with httpx.Client(base_url=other_process, headers=headers, timeout=30) as there:
        for _ in range(3):  # the other process now holds "no limit" in its cache
            assert there.post("/api/v1/metrics", json={"metrics": [_point()]}).status_code == 200
        with clients.as_role("admin") as admin:
            changed = admin.patch(
                "/api/v1/environments/staging", json={"limits": {"api_rate_limit": 1}}
            )
            assert changed.status_code == 200, changed.text
        at = time.monotonic()
        while True:
            answer = there.post("/api/v1/metrics", json={"metrics": [_point()]})
            if answer.status_code == 429:
                break
            assert answer.status_code == 200, answer.text
            assert time.monotonic() - at < 5, "the other process never saw the change"
            time.sleep(0.02)
        # One batch may pass under the new budget before the refusal: allow one request's time.
        assert time.monotonic() - at <= cache.TTL_S + 0.25
    with engine.connect() as conn:
        limits = conn.execute(
            sa.text("SELECT limits FROM environments WHERE name = 'staging'")
        ).scalar_one()
    assert "api_rate_limit" in str(limits)
