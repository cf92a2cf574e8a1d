"""Issue 18 item 12: a large SARIF import against a live server on SQLite, while another client
writes a metric every 50 ms. Prints the import's total time, the other writer's longest wait and
the server process's RSS growth. Run: python -m bench.scan_import [results] (default 100,000)."""

from __future__ import annotations

import copy
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from shipboard.app import create_app
from shipboard.audit.service import AuditContext
from shipboard.auth import service as auth
from shipboard.auth.schemas import UserCreate
from shipboard.config import Settings
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments.service import seed_environments

SAMPLE = (
    Path(__file__).resolve().parent.parent
    / "tests/fixtures/security/sarif/semgrep-0.17.0__dd_semgrepowasp-benchmark-sample.sarif"
)


def big_sarif(results: int) -> bytes:
    document = json.loads(SAMPLE.read_bytes())
    run = document["runs"][0]
    base = run["results"]
    out = []
    for n in range(results // len(base) + 1):
        for result in base:
            clone = copy.deepcopy(result)
            for location in clone.get("locations") or []:
                artifact = location["physicalLocation"]["artifactLocation"]
                artifact["uri"] = f"copy{n}/{artifact['uri']}"
            out.append(clone)
    run["results"] = out[:results]
    return json.dumps(document).encode()


# Another process that takes SQLite's write lock every 10 ms: what it waits is the lock alone,
# while the HTTP writer above also waits for the server's CPU (and its GIL, shared with parsing).
LOCK_PROBE = """
import json, os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=120, isolation_level=None)
waits = []
while not os.path.exists(sys.argv[2]):
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    waits.append(time.perf_counter() - started)
    conn.execute("COMMIT")
    time.sleep(0.01)
print(json.dumps({"longest": max(waits), "writes": len(waits)}))
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    results = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    home = tempfile.mkdtemp(prefix="shipboard-bench-")
    url = f"sqlite:///{home}/bench.db"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    system = AuditContext(actor="bench", actor_role="admin")
    with system_transaction(engine) as session:
        seed_environments(session)
        token = auth.create_user(
            session, data=UserCreate(name="bench", role="admin"), audit_context=system
        ).token
    data = big_sarif(results)
    settings = Settings(database_url=url, log_level="info", home=home)
    app = create_app(settings, engine=engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    for label in ("first import", "re-import"):
        done: dict[str, object] = {}
        rss_before = rss_mb()
        peak = [rss_before]

        def upload(done: dict[str, object] = done) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=900) as client:
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/security/scans/import",
                    files={"file": ("big.sarif", data, "application/json")},
                    data={"environment": "staging"},
                )
                done["s"] = time.perf_counter() - started
                done["status"] = response.status_code

        waits: list[float] = []
        failed: list[str] = []
        thread = threading.Thread(target=upload)
        stop = Path(home) / f"stop-{label}"
        probe = subprocess.Popen(  # noqa: S603 - this interpreter, a script of ours
            [sys.executable, "-c", LOCK_PROBE, f"{home}/bench.db", str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        with httpx.Client(base_url=base, headers=headers, timeout=900) as other:
            thread.start()
            while thread.is_alive():
                started = time.perf_counter()
                response = other.post(
                    "/api/v1/metrics",
                    json={
                        "metrics": [
                            {
                                "name": "probe",
                                "value": 1,
                                "environment": "staging",
                                "source": "bench",
                            }
                        ]
                    },
                )
                waits.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    failed.append(f"{response.status_code} after {waits[-1]:.1f} s")
                peak.append(rss_mb())
                time.sleep(0.05)
        thread.join()
        stop.touch()
        locked = json.loads(probe.communicate(timeout=300)[0])
        print(
            f"{label}: {results} results, {len(data) / 1e6:.1f} MB, status {done['status']}, "
            f"import {done['s']:.1f} s, other writer longest wait {max(waits):.2f} s "
            f"(median {sorted(waits)[len(waits) // 2]:.3f} s, {len(waits)} writes), "
            f"RSS +{max(peak) - rss_before:.0f} MB at peak, "
            f"other writes failed: {failed or 'none'}, "
            f"lock-only writer (another process) longest wait {locked['longest']:.2f} s, "
            f"maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
            flush=True,
        )
    server.should_exit = True


if __name__ == "__main__":
    main()
