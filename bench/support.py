"""What the figures share: sample data, timing, live servers, load generators, the database
of a run and the machine line."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments.service import seed_environments

PG_URL = os.environ.get(
    "SHIPBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def metric_points(n: int) -> list[dict[str, Any]]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    return [
        {
            "name": "http_request_duration_ms",
            "value": float(i % 997),
            "timestamp": (t0 + timedelta(milliseconds=i)).isoformat(),
            "environment": "production",
            "tags": {"route": f"/r/{i % 20}", "method": "GET"},
            "source": "application",
        }
        for i in range(n)
    ]


def best_rate(fn: Callable[[], None], n: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


@contextmanager
def live_instance(url: str, role: str) -> Iterator[tuple[Any, Engine, str, str]]:
    """A migrated, seeded database and a real server on loopback with default settings:
    yields (app, engine, token of a user with ``role``, base URL)."""
    import socket
    import threading

    import uvicorn

    from shipboard.app import create_app
    from shipboard.audit.service import AuditContext
    from shipboard.auth.schemas import UserCreate
    from shipboard.auth.service import create_user
    from shipboard.config import Settings

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
        token = create_user(
            s,
            data=UserCreate(name=f"bench-{uuid.uuid4().hex[:6]}", role=role),  # type: ignore[arg-type]
            audit_context=AuditContext(actor="bench"),
        ).token
    with tempfile.TemporaryDirectory() as home:
        app = create_app(
            Settings(database_url=url, home=Path(home), log_level="warning"), engine=engine
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield app, engine, token, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


def driver_load(engine: Engine, backend: str, table: str, columns: str, rows: list[tuple]) -> None:
    """The baseline: rows written by the driver in one stream (COPY / executemany)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if backend == "postgres":
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns.split(","))
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()


def load_tool(url: str, token: str | None, *options: list[str]) -> dict[str, Any]:
    """bench/load.py in a process of its own."""
    import subprocess

    command = [sys.executable, "-m", "bench.load", url, *(o for group in options for o in group)]
    out = subprocess.run(  # noqa: S603 -- our own interpreter and module, our own arguments
        command + (["--token", token] if token else []),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def load_url(
    url: str, token: str | None, seconds: float, *, cookie: str | None = None
) -> dict[str, Any]:
    """32 concurrent connections for ``seconds``: wrk when it is installed (``make bench``
    installs it), else bench/load.py, whose Python client tops out near 400 req/s on this machine
    and so understates the fast baseline (the result then says ``"tool": "python"``)."""
    import shutil

    if shutil.which("wrk"):
        return wrk(url, token, seconds, cookie=cookie)
    if cookie:
        raise RuntimeError(
            "a figure that signs in with a cookie needs wrk (make bench installs it)"
        )
    result = load_tool(url, token, ["--concurrency", "32", "--seconds", str(seconds)])
    return {**result, "tool": "python"}


def wrk(
    url: str, token: str | None, seconds: float, *, cookie: str | None = None
) -> dict[str, Any]:
    """wrk with one thread and 32 connections, its summary parsed."""
    import re
    import subprocess

    command = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    if cookie:
        command[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(  # noqa: S603 -- a fixed tool, our own arguments
        command, capture_output=True, text=True, check=True
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"wrk printed no {label}% latency:\n{out}")
        return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if rps is None or total is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(bad[1]) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "requests": int(total[1]),
        "errors": errors,
        "rps": float(rps[1]),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "tool": "wrk",
    }


@contextmanager
def server_process(
    url: str, *, worker: bool = False, env: dict[str, str] | None = None
) -> Iterator[tuple[int, str, str]]:
    """``shipboard serve --no-worker`` in a process of its own on a migrated, seeded database,
    so its RSS is the server's alone: yields (pid, admin token, base URL). With ``worker`` the
    process runs its background work too (the scheduler, so the remote-write forwarder);
    ``env`` adds settings (``SHIPBOARD_…``)."""
    import socket
    import subprocess

    import httpx

    from shipboard.audit.service import AuditContext
    from shipboard.auth.schemas import UserCreate
    from shipboard.auth.service import create_user

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
        token = create_user(
            s,
            data=UserCreate(name=f"bench-{uuid.uuid4().hex[:6]}", role="admin"),  # type: ignore[arg-type]
            audit_context=AuditContext(actor="bench"),
        ).token
    engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "SHIPBOARD_HOME": home,
            "SHIPBOARD_DATABASE_URL": url,
            "SHIPBOARD_LOG_LEVEL": "warning",
            **(env or {}),
        }
        log = Path(home) / "serve.log"
        proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module, our own arguments
            [
                sys.executable,
                "-m",
                "shipboard",
                "serve",
                *([] if worker else ["--no-worker"]),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    said = log.read_text(errors="replace").strip().splitlines()[-15:]
                    raise RuntimeError(
                        "shipboard serve did not become ready in 60 s; it said:\n" + "\n".join(said)
                    )
                time.sleep(0.1)
            yield proc.pid, token, base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def machine_line() -> str:
    """Cores, CPU, Python, SQLite, PostgreSQL and VictoriaMetrics versions: the top line of the
    output."""
    import platform
    import sqlite3

    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = "no server"
    try:
        engine = create_db_engine(PG_URL, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            pg = str(conn.execute(sa.text("SHOW server_version")).scalar())
        engine.dispose()
    except sa.exc.OperationalError:
        pass
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {pg}, {victoria_metrics_version()}"
    )


def pg_database() -> tuple[str, Callable[[], None]] | None:
    try:
        admin = create_db_engine(PG_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        name = f"shipboard_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.engine.make_url(create_db_engine(PG_URL).url).set(database=name)
    return url.render_as_string(hide_password=False), drop


VICTORIA_METRICS = "/usr/bin/victoria-metrics"


def victoria_metrics_binary() -> str | None:
    """Debian's ``victoria-metrics`` (``.ci/run`` installs it), or None when it is missing."""
    import shutil

    found = shutil.which("victoria-metrics")
    if found:
        return found
    return VICTORIA_METRICS if Path(VICTORIA_METRICS).exists() else None


def victoria_metrics_version() -> str:
    """``victoria-metrics -version``; Debian's build prints nothing there (nor in its
    buildinfo), so then the package's version."""
    import subprocess

    binary = victoria_metrics_binary()
    if binary is None:
        return "victoria-metrics not installed"
    said = subprocess.run(  # noqa: S603 -- a fixed binary, a fixed flag
        [binary, "-version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if said:
        return said
    package = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"victoria-metrics {package or 'unknown'} (Debian package)"


class VictoriaMetrics:
    """A single-node VictoriaMetrics on a free loopback port with a data directory of its own,
    stopped by its PID: the same flags as the test fixture (tests/support/live.py), which bench
    does not import."""

    def __init__(self, binary: str, directory: str) -> None:
        import socket
        import subprocess

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self._log = Path(directory) / "victoria-metrics.log"
        self.process = subprocess.Popen(  # noqa: S603 -- a fixed binary, our own arguments
            [
                binary,
                f"-storageDataPath={Path(directory) / 'data'}",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y",
                # Queries see points once flushed, not a minute later; no cached answers.
                "-search.latencyOffset=0s",
                "-search.disableCache",
            ],
            stdout=self._log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = self._log.read_text(errors="replace").strip().splitlines()[-10:]
                raise RuntimeError("victoria-metrics did not start:\n" + "\n".join(said))
            time.sleep(0.05)

    def write(self, body: bytes) -> None:
        """One remote-write request (a snappy-compressed ``WriteRequest``)."""
        from shipboard.monitoring import remote_write as rw

        answer = self.client.post(
            "/api/v1/write",
            content=body,
            headers={
                "Content-Type": rw.CONTENT_TYPE,
                "Content-Encoding": rw.CONTENT_ENCODING,
                "X-Prometheus-Remote-Write-Version": rw.PROTOCOL_VERSION,
            },
        )
        if not answer.is_success:
            raise RuntimeError(f"remote write answered {answer.status_code}: {answer.text[:300]}")

    def flush(self) -> None:
        self.client.get("/internal/force_flush").raise_for_status()

    def scalar(self, query: str) -> float:
        """The value of an instant query that gives one number (0 when it gives none)."""
        answer = self.client.get("/api/v1/query", params={"query": query, "time": time.time()})
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 -- it did not stop on SIGTERM: end it
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    """A fresh VictoriaMetrics for one figure; RuntimeError when the binary is missing (the
    figures turn that into a skipped row)."""
    binary = victoria_metrics_binary()
    if binary is None:
        raise RuntimeError("victoria-metrics is not installed")
    with tempfile.TemporaryDirectory(prefix="shipboard-bench-vm-") as directory:
        store = VictoriaMetrics(binary, directory)
        try:
            yield store
        finally:
            store.stop()
