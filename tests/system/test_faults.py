"""Faults, injected for real: the database going away mid-request, a worker killed at every stage
of a pipeline, notification receivers that hang or fail, and SIGTERM to the server and workers.

PostgreSQL is never stopped (others share the cluster): a loopback TCP proxy stands between a
live server and it, and the test cuts the proxy. A full disk while writing a backup is covered in
tests/ops/test_backup.py (test_a_full_disk_is_a_clear_error_and_leaves_nothing,
test_the_archive_appears_whole_or_not_at_all).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from shipboard.background import runtime
from shipboard.notifications.delivery import BACKOFF_BASE_S, BACKOFF_CAP_S, send_due
from tests.support.databases import Database
from tests.support.factories import (
    TERMINAL,
    create_channel,
    create_rule,
    deployment_logs,
    push_points,
    set_pipeline,
    start_deployment,
)
from tests.support.live import Clients, LiveServer, free_port, wait_for

PROBLEM_JSON = "application/problem+json"


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["status"] == 503


def _points(n: int, name: str, environment: str = "production") -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=5)
    return {
        "metrics": [
            {
                "name": name,
                "value": float(i),
                "timestamp": (at + timedelta(milliseconds=i)).isoformat(),
                "environment": environment,
                "source": "application",
                "tags": {"host": f"h{i % 50}", "pad": "x" * 40},
            }
            for i in range(n)
        ]
    }


def _count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(sql), params) or 0)


# --- 1. the database goes away ------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy that can be cut (every connection closed, new ones closed at once)
    and restored, optionally cutting itself once a number of bytes went upstream."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self.upstream_bytes = 0
        self.refused = 0
        self._cut_at: int | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for src, dst, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, upstream), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if upstream:
                    with self._lock:
                        self.upstream_bytes += len(data)
                        trip = self._cut_at is not None and self.upstream_bytes >= self._cut_at
                    if trip:
                        self.cut()
                        return
        except OSError:
            pass
        for sock in (src, dst):
            _close(sock)

    def cut_after(self, n_bytes: int) -> None:
        with self._lock:
            self._cut_at = self.upstream_bytes + n_bytes

    def cut(self) -> None:
        with self._lock:
            self.up = False
            self._cut_at = None
            socks, self._open = self._open, set()
        for sock in socks:
            _close(sock)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _as(server: LiveServer, clients: Clients, role: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {clients.tokens[role]}"},
        timeout=30,
    )


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_gone_mid_request_is_503_nothing_half_written_and_recovers(
    clients: Clients, db: Database, engine: Engine
) -> None:
    url = make_url(db.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    live = LiveServer(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    live.start()
    batch = _points(10_000, "fault_probe")
    probe = "SELECT count(*) FROM monitoring_metrics WHERE name = 'fault_probe'"
    try:
        with _as(live, clients, "admin") as admin:
            assert admin.get("/api/v1/deployments").status_code == 200

            # Mid-request: the proxy cuts itself once 64 KiB of the 10,000-row insert went out.
            proxy.cut_after(64 * 1024)
            cut = admin.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": "b-1"})
            _assert_unavailable(cut)
            assert not proxy.up
            assert _count(engine, probe) == 0  # all or nothing: nothing

            # While it is gone: reads and writes alike are 503 with Retry-After, and fast.
            attempts = [
                ("GET", "/api/v1/deployments", None),
                ("GET", "/api/v1/environments", None),
                ("GET", "/api/v1/metrics/names", None),
                (
                    "POST",
                    "/api/v1/deployments",
                    {"environment": "staging", "version": "9.9.9", "commit_sha": "abcdef1"},
                ),
                ("POST", "/api/v1/metrics", _points(10, "fault_small")),
            ]
            slowest = 0.0
            for method, path, body in attempts:
                started = time.monotonic()
                _assert_unavailable(admin.request(method, path, json=body))
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 5, slowest
            assert admin.get("/healthz").status_code == 200  # alive: no restart wanted
            assert admin.get("/readyz").status_code == 503

            # Back: the same server answers at once; dead pooled connections are replaced.
            proxy.restore()
            started = time.monotonic()
            assert admin.get("/api/v1/deployments").status_code == 200
            recovered_s = time.monotonic() - started
            created = admin.post(
                "/api/v1/deployments",
                json={"environment": "staging", "version": "9.9.10", "commit_sha": "abcdef1"},
            )
            assert created.status_code == 201, created.text
            # The client's retry with the same key stores the batch once, whole.
            retried = admin.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": "b-1"})
            assert retried.status_code in (200, 201, 202), retried.text
            again = admin.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": "b-1"})
            assert again.json() == retried.json()
            assert admin.get("/readyz").status_code == 200
    finally:
        live.stop()
        proxy.close()
    assert _count(engine, probe) == 10_000
    assert _count(engine, "SELECT count(*) FROM monitoring_metrics WHERE name = 'fault_small'") == 0
    assert _count(engine, "SELECT count(*) FROM deployment_configs WHERE version = '9.9.9'") == 0
    print(
        f"\npostgres: recovered in {recovered_s * 1000:.0f} ms; slowest 503 {slowest * 1000:.0f} ms"
    )


BUSY_TIMEOUT_MS = 400


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_locked_past_the_busy_timeout_is_503_then_recovers(
    clients: Clients, db: Database, engine: Engine
) -> None:
    live = LiveServer(db.url)

    # The server's own engine, with a busy timeout short enough for a test (the default is 30 s;
    # the code path past it is the same).
    @event.listens_for(live.engine, "connect")
    def _short_busy_timeout(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    live.engine.dispose()
    live.start()
    path = make_url(db.url).database
    assert path
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
    deployment = {"environment": "staging", "version": "7.0.0", "commit_sha": "abcdef1"}
    try:
        with _as(live, clients, "admin") as admin:
            blocker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            _assert_unavailable(admin.post("/api/v1/deployments", json=deployment))
            waited = time.monotonic() - started
            assert waited >= BUSY_TIMEOUT_MS / 1000 * 0.9, waited
            _assert_unavailable(admin.post("/api/v1/metrics", json=_points(100, "locked")))
            # WAL: readers are not blocked by a writer, exclusive or not.
            assert admin.get("/api/v1/deployments").status_code == 200
            blocker.execute("ROLLBACK")

            created = admin.post("/api/v1/deployments", json=deployment)
            assert created.status_code == 201, created.text

            # A lock shorter than the busy timeout is waited out, not refused.
            blocker.execute("BEGIN EXCLUSIVE")
            threading.Timer(BUSY_TIMEOUT_MS / 1000 / 3, blocker.execute, ("ROLLBACK",)).start()
            ok = admin.post("/api/v1/metrics", json=_points(100, "locked"))
            assert ok.status_code in (200, 201, 202), ok.text
    finally:
        blocker.close()
        live.stop()
    assert _count(engine, "SELECT count(*) FROM monitoring_metrics WHERE name = 'locked'") == 100
    assert _count(engine, "SELECT count(*) FROM deployment_configs WHERE version = '7.0.0'") == 1


# --- 2. a worker killed at every stage ------------------------------------------------------------


def _worker_env(db: Database, clients: Clients) -> dict[str, str]:
    return {
        **os.environ,
        "SHIPBOARD_DATABASE_URL": db.url,
        "SHIPBOARD_HOME": str(clients.server.settings.home),
        "SHIPBOARD_LOG_LEVEL": "warning",
        "SHIPBOARD_EVAL_INTERVAL_S": "3600",
    }


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "shipboard", "worker", "--lease", "1", "--poll", "0.05"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kill_group(pid_file: Path) -> None:
    """A SIGKILLed worker cannot end its step's process group: the test does."""
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


STAGES = ("build", "deploy", "verify")


@pytest.mark.parametrize(
    ("backend", "stage"),
    [
        ("sqlite", "build"),
        ("sqlite", "deploy"),
        ("sqlite", "verify"),
        pytest.param("postgres", "deploy", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
    indirect=["backend"],
)
def test_worker_killed_at_each_stage_ends_in_one_defined_state(
    clients: Clients, db: Database, engine: Engine, tmp_path: Path, stage: str
) -> None:
    runs, marker, pid_file = tmp_path / "runs", tmp_path / "blocked", tmp_path / "pgid"
    steps = []
    for each in STAGES:
        command = f'echo "$SHIPBOARD_VERSION {each}" >> {runs}'
        if each == stage:
            command += (
                f'; if [ "$SHIPBOARD_VERSION" = "2.0.0" ]; then '
                f"echo $$ > {pid_file}; touch {marker}; sleep 60; fi"
            )
        steps.append({"name": each, "stage": each, "run": command})
    env = _worker_env(db, clients)
    doomed = _start_worker(env, tmp_path / "doomed.log")
    survivor: subprocess.Popen[bytes] | None = None
    try:
        with clients.as_role("admin") as admin:
            set_pipeline(admin, "staging", {"steps": steps}, auto_rollback=True)
            good = start_deployment(admin, version="1.0.0")
            wait_for(lambda: admin.get(f"/api/v1/deployments/{good}").json()["status"] == "success")
            bad = start_deployment(admin, version="2.0.0")
            queued = start_deployment(admin, version="3.0.0")  # waits behind it in the queue
            wait_for(marker.exists)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            killed_at = time.monotonic()
            assert admin.get(f"/api/v1/deployments/{queued}").json()["status"] == "pending"

            survivor = _start_worker(env, tmp_path / "survivor.log")

            def settled() -> list[dict[str, Any]] | None:
                items = admin.get(
                    "/api/v1/deployments", params={"environment": "staging", "limit": 50}
                ).json()["items"]
                done = all(d["status"] in TERMINAL for d in items)
                return items if done and len(items) >= 3 else None

            everything = wait_for(settled, timeout=30)
            settled_s = time.monotonic() - killed_at
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            lines = [line["message"] for line in deployment_logs(admin, bad)]
            last = admin.get(f"/api/v1/deployments/{queued}").json()
    finally:
        _stop(doomed)
        if survivor is not None:
            _stop(survivor)
        _kill_group(pid_file)

    expected = "failed" if stage == "build" else "rolled_back"
    entered = "building" if stage == "build" else "deploying"
    assert (detail["status"], detail["error_message"]) == (
        expected,
        f"worker lost during {entered}",
    )
    # Exactly one transition to failed, one "worker lost", and the stages up to the killed one
    # ran once each: the survivor never ran it again.
    assert sum("-> failed" in line for line in lines) == 1, lines
    assert sum("worker lost" in line for line in lines) == 1, lines
    assert sum("-> rolled_back" in line for line in lines) == (stage != "build"), lines
    ran = runs.read_text().split("\n")
    killed_upto = STAGES[: STAGES.index(stage) + 1]
    assert [r.split()[1] for r in ran if r.startswith("2.0.0")] == list(killed_upto)
    # The queued deployment was not lost with the worker: it ran once, after the kill.
    assert last["status"] == "success"
    assert [r.split()[1] for r in ran if r.startswith("3.0.0")] == list(STAGES)
    rollbacks = [d for d in everything if d.get("rollback_from") == bad]
    assert len(rollbacks) == (stage != "build")
    assert all(d["status"] == "success" for d in rollbacks)
    with engine.connect() as conn:
        leased = conn.scalar(
            sa.text("SELECT count(*) FROM deployment_runs WHERE lease_owner IS NOT NULL")
        )
    assert leased == 0
    print(f"\n{db.backend}/{stage}: settled {settled_s:.1f} s after SIGKILL")


# --- 3. receivers that hang or fail -------------------------------------------------------------


class SlowReceiver:
    """Answers every POST with ``status``, after ``delay_s``; records when each one arrived."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.arrivals: list[float] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.arrivals.append(time.monotonic())
                if delay_s:
                    outer.release.wait(delay_s)
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def receivers() -> Iterator[list[SlowReceiver]]:
    made: list[SlowReceiver] = []
    yield made
    for receiver in made:
        receiver.close()


def _deliveries(client: httpx.Client, channel: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/notification-channels/{channel['id']}/deliveries")
    return list(response.json()["items"])


def test_a_500_receiver_is_retried_with_growing_delays_then_given_up(
    clients: Clients, engine: Engine, receivers: list[SlowReceiver]
) -> None:
    failing = SlowReceiver(status=500)
    receivers.append(failing)
    keyring = clients.server.app.state.keyring
    with clients.as_role("admin") as admin:
        channel = create_channel(admin, "failing", failing.url)
        assert admin.post(f"/api/v1/notification-channels/{channel['id']}/test").status_code == 202
        # Each attempt at the moment the previous one scheduled, on the test's clock; one
        # moment earlier nothing is sent.
        due = first_due = datetime.now(UTC)
        scheduled: list[datetime] = []
        for _ in range(5):
            assert send_due(engine, keyring, now=due, max_attempts=5) == 1
            (delivery,) = _deliveries(admin, channel)
            if delivery["next_attempt_at"] is None:
                break
            due = datetime.fromisoformat(delivery["next_attempt_at"])
            scheduled.append(due)
            early = due - timedelta(milliseconds=1)
            assert send_due(engine, keyring, now=early, max_attempts=5) == 0
        (delivery,) = _deliveries(admin, channel)
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [500] * 5
    assert all(a["error"] == "HTTP 500" and not a["ok"] for a in delivery["attempts"])
    assert len(failing.arrivals) == 5
    # Delays from one attempt to the next: equal-jitter exponential, so they only grow.
    attempted_at = [first_due, *scheduled]
    delays = [(s - a).total_seconds() for a, s in zip(attempted_at, scheduled, strict=False)]
    assert len(delays) == 4
    assert all(b > a for a, b in itertools.pairwise(delays)), delays
    for n, delay in enumerate(delays, start=1):
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**n)
        assert ceiling / 2 <= delay <= ceiling + 0.5, (n, delays)


@pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])],
    indirect=True,
)
def test_a_hanging_receiver_blocks_neither_evaluation_nor_other_receivers(
    clients: Clients, engine: Engine, receivers: list[SlowReceiver]
) -> None:
    hanging = SlowReceiver(delay_s=30)
    healthy = SlowReceiver()
    receivers.extend([hanging, healthy])
    keyring = clients.server.app.state.keyring
    with clients.as_role("admin") as admin:
        slow_channel = create_channel(admin, "hangs", hanging.url)
        fast_channel = create_channel(admin, "healthy", healthy.url)
        create_rule(admin, "First", metric="first_errors", for_s=0, channels=["hangs"])
        second = create_rule(admin, "Second", metric="second_errors", for_s=0, channels=["healthy"])
    now = datetime.now(UTC)
    push_points(engine, "first_errors", [50], now - timedelta(seconds=5))
    scheduler = runtime(engine, keyring, eval_interval_s=0.2, poll_s=0.05)
    stop = scheduler.start()
    try:
        wait_for(lambda: hanging.arrivals, timeout=10)
        hung_at = time.monotonic()
        # While that delivery hangs, the second rule fires and its receiver hears of it.
        push_points(engine, "second_errors", [50], datetime.now(UTC) - timedelta(seconds=1))
        with clients.as_role("admin") as admin:

            def second_firing() -> bool:
                alerts = admin.get("/api/v1/alerts").json()["items"]
                return any(a["rule_id"] == second["id"] and a["state"] == "firing" for a in alerts)

            wait_for(second_firing, timeout=5, interval=0.02)
            fired_after = time.monotonic() - hung_at
            wait_for(lambda: healthy.arrivals, timeout=5, interval=0.02)
            told_after = healthy.arrivals[0] - hung_at
            assert fired_after < 2, fired_after
            assert told_after < 2, told_after
            assert len(hanging.arrivals) == 1  # still the first attempt, still hanging
            # The hanging one times out, is recorded, and is retried later, with backoff.
            (slow,) = wait_for(
                lambda: [d for d in _deliveries(admin, slow_channel) if d["attempts"]],
                timeout=15,
            )
            (fast,) = _deliveries(admin, fast_channel)
    finally:
        stop.set()
        assert scheduler.thread is not None
        scheduler.thread.join(timeout=30)
    assert fast["status"] == "sent"
    assert slow["status"] == "pending"
    (attempt,) = slow["attempts"]
    assert attempt["status_code"] is None, attempt
    assert "Timeout" in attempt["error"], attempt
    assert attempt["duration_ms"] >= 4000
    ended = datetime.fromisoformat(attempt["at"]) + timedelta(milliseconds=attempt["duration_ms"])
    delay = (datetime.fromisoformat(slow["next_attempt_at"]) - ended).total_seconds()
    assert 1 - 0.1 <= delay <= 2 + 0.1, delay  # backoff(1), counted from the attempt's end
    print(
        f"\nhanging receiver: second rule fired after {fired_after:.2f} s, told {told_after:.2f} s"
    )


# --- 5. SIGTERM ---------------------------------------------------------------------------------


def _serve(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipboard", "serve", "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text()
            return False

    wait_for(up, timeout=30, interval=0.1)
    return proc, base


def _pipeline_waiting_for(started: Path, go: Path, runs: Path) -> dict[str, Any]:
    wait_go = f"touch {started}; while [ ! -f {go} ]; do sleep 0.05; done"
    return {
        "steps": [
            {"name": "build", "stage": "build", "run": wait_go},
            {"name": "deploy", "stage": "deploy", "run": f'echo "$SHIPBOARD_VERSION" >> {runs}'},
        ]
    }


def _assert_finished_and_nothing_claimed(
    engine: Engine, one: dict[str, Any], two: dict[str, Any], lines: list[str], runs: Path
) -> None:
    assert one["status"] == "success", one
    assert not any("worker lost" in line for line in lines)
    assert runs.read_text().split() == ["1.0.0"]
    # Nothing claimed after the signal: the next deployment waits, whole, for another worker.
    assert two["status"] == "pending"
    with engine.connect() as conn:
        leased = conn.scalar(
            sa.text("SELECT count(*) FROM deployment_runs WHERE lease_owner IS NOT NULL")
        )
    assert leased == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigterm_to_serve_finishes_the_request_and_the_deployment_under_way(
    clients: Clients, db: Database, engine: Engine, tmp_path: Path
) -> None:
    """``shipboard serve`` (API and in-process worker): SIGTERM while a 10,000-point upload is
    half sent and a step runs. The upload completes (2xx, every row), new connections are
    refused, the deployment finishes, nothing new is claimed, and the process exits 0."""
    import json

    started, go, runs = tmp_path / "started", tmp_path / "go", tmp_path / "runs"
    log = tmp_path / "serve.log"
    proc, base = _serve(_worker_env(db, clients), log)
    body = json.dumps(_points(10_000, "in_flight")).encode()
    half = len(body) // 2
    sent_half, go_on = threading.Event(), threading.Event()

    def upload() -> Iterator[bytes]:
        yield body[:half]
        sent_half.set()
        go_on.wait(10)
        yield body[half:]

    result: dict[str, Any] = {}

    def post() -> None:
        headers = {
            "Authorization": f"Bearer {clients.tokens['service']}",
            "Content-Type": "application/json",
        }
        with httpx.Client(base_url=base, timeout=30) as client:
            result["response"] = client.post("/api/v1/metrics", content=upload(), headers=headers)

    sender = threading.Thread(target=post)
    try:
        with clients.as_role("admin") as admin:
            set_pipeline(admin, "staging", _pipeline_waiting_for(started, go, runs))
            first = start_deployment(admin, version="1.0.0")
            wait_for(started.exists)
            sender.start()
            assert sent_half.wait(10)
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            second = start_deployment(admin, version="2.0.0")  # through the test's own server
            # Shutting down: no new connection is taken, the one under way is waited for.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{base}/healthz", timeout=2)
            assert proc.poll() is None
            go_on.set()
            sender.join(timeout=30)
            response = result["response"]
            assert response.status_code in (200, 201, 202), response.text
            # The HTTP side is done; the worker still runs its step, renewing its lease.
            time.sleep(1)
            assert proc.poll() is None, log.read_text()
            assert admin.get(f"/api/v1/deployments/{first}").json()["status"] == "building"
            go.touch()
            code = proc.wait(timeout=30)
            one = admin.get(f"/api/v1/deployments/{first}").json()
            two = admin.get(f"/api/v1/deployments/{second}").json()
            lines = [line["message"] for line in deployment_logs(admin, first)]
    finally:
        go_on.set()
        go.touch()
        _stop(proc)
    assert code == 0, log.read_text()
    stored = "SELECT count(*) FROM monitoring_metrics WHERE name = 'in_flight'"
    assert _count(engine, stored) == 10_000
    _assert_finished_and_nothing_claimed(engine, one, two, lines, runs)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigterm_to_a_worker_mid_step_finishes_the_deployment_and_claims_nothing_more(
    clients: Clients, db: Database, engine: Engine, tmp_path: Path
) -> None:
    started, go, runs = tmp_path / "started", tmp_path / "go", tmp_path / "runs"
    log = tmp_path / "worker.log"
    proc = _start_worker(_worker_env(db, clients), log)
    try:
        with clients.as_role("admin") as admin:
            set_pipeline(admin, "staging", _pipeline_waiting_for(started, go, runs))
            first = start_deployment(admin, version="1.0.0")
            wait_for(started.exists)
            proc.send_signal(signal.SIGTERM)
            second = start_deployment(admin, version="2.0.0")
            time.sleep(1.5)  # longer than the lease: it is renewed while the step runs
            assert proc.poll() is None, log.read_text()
            assert admin.get(f"/api/v1/deployments/{first}").json()["status"] == "building"
            go.touch()
            code = proc.wait(timeout=30)
            one = admin.get(f"/api/v1/deployments/{first}").json()
            two = admin.get(f"/api/v1/deployments/{second}").json()
            lines = [line["message"] for line in deployment_logs(admin, first)]
    finally:
        go.touch()
        _stop(proc)
    assert code == 0, log.read_text()
    _assert_finished_and_nothing_claimed(engine, one, two, lines, runs)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigterm_closes_a_live_log_stream_that_would_never_end_after_the_grace(
    clients: Clients, db: Database, tmp_path: Path
) -> None:
    """A stream on a deployment that waits (here: no worker to run it) never ends by itself;
    shutdown closes it after ``SHIPBOARD_SHUTDOWN_GRACE_S`` instead of hanging forever."""
    env = {**_worker_env(db, clients), "SHIPBOARD_SHUTDOWN_GRACE_S": "1"}
    log = tmp_path / "serve.log"
    proc, base = _serve(env, log, "--no-worker")
    opened = threading.Event()
    outcome: dict[str, Any] = {}

    def listen(did: str) -> None:
        headers = {"Authorization": f"Bearer {clients.tokens['viewer']}"}
        try:
            with httpx.stream(
                "GET", f"{base}/api/v1/deployments/{did}/logs/stream", headers=headers, timeout=60
            ) as response:
                for _ in response.iter_lines():
                    opened.set()
            outcome["closed"] = True
        except httpx.HTTPError as exc:  # a cut connection is also an end
            outcome["closed"] = type(exc).__name__

    try:
        with clients.as_role("admin") as admin:
            did = start_deployment(admin, version="1.0.0")
        listener = threading.Thread(target=listen, args=(did,), daemon=True)
        listener.start()
        assert opened.wait(10)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        took = time.monotonic() - started
        listener.join(timeout=5)
    finally:
        _stop(proc)
    assert code == 0, log.read_text()
    assert took < 10, took
    assert outcome.get("closed"), outcome
