"""Managed deployments end to end: real shell steps, a real worker, a real HTTP healthcheck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.support.databases import Database
from tests.support.factories import (
    deployment_logs,
    pipeline_steps,
    set_pipeline,
    start_deployment,
    wait_final,
)
from tests.support.live import Clients, free_port, wait_for
from tests.support.problems import assert_problem


class Health:
    """A local HTTP service whose health depends on the version the deploy step wrote."""

    def __init__(self, state_file: Path, bad_version: str) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                current = state_file.read_text().strip() if state_file.exists() else ""
                outer.hits += 1
                self.send_response(503 if current == bad_version else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = 0
        self.port = free_port()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/health"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def health(tmp_path: Path) -> Iterator[Health]:
    service = Health(tmp_path / "current", bad_version="2.0.0")
    yield service
    service.close()


def test_pipeline_success_with_times_ordered_logs_and_masked_secret(
    clients: Clients, worker: Any
) -> None:
    with clients.as_role("admin") as admin:
        admin.put("/api/v1/environments/staging/secrets/DB_PASSWORD", json={"value": "hunter2-xyz"})
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(
                ("compile", "build", 'echo "building $SHIPBOARD_VERSION"; sleep 0.2; echo two'),
                # stdout and stderr are two pipes: lines keep their order within each, and
                # across them only by arrival, hence the pause.
                ("leak", "build", 'echo "password is $DB_PASSWORD"; sleep 0.2; echo oops >&2'),
                (
                    "ship",
                    "deploy",
                    'echo "deploying $SHIPBOARD_COMMIT_SHA to $SHIPBOARD_ENVIRONMENT"',
                ),
                ("smoke", "verify", "echo verified"),
            ),
        )
    with clients.as_role("deployer") as client:
        did = start_deployment(client)
        detail = wait_final(client, did)
        lines = deployment_logs(client, did)
    assert detail["status"] == "success", detail
    assert detail["build_time"] >= 200
    assert detail["deploy_time"] is not None
    assert detail["completed_at"] is not None
    output = [
        (line["source"], line["level"], line["message"])
        for line in lines
        if line["source"] != "shipboard"
    ]
    assert output == [
        ("build", "info", "building 1.0.0"),
        ("build", "info", "two"),
        ("build", "info", "password is ***"),
        ("build", "warn", "oops"),
        ("deploy", "info", "deploying abcdef1 to staging"),
        ("verify", "info", "verification started"),
        ("verify", "info", "verified"),
    ]
    assert all("hunter2-xyz" not in line["message"] for line in lines)
    statuses = [line["message"] for line in lines if "->" in line["message"]]
    assert [s.split(" (")[0] for s in statuses] == [
        "status pending -> building",
        "status building -> deploying",
        "status deploying -> success",
    ]
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)


def test_step_environment_does_not_leak_the_servers_own(clients: Clients, worker: Any) -> None:
    os.environ["SHIPBOARD_SECRET_KEYS_CANARY"] = "must-not-leak"
    try:
        with clients.as_role("admin") as admin:
            set_pipeline(admin, "staging", pipeline_steps(("env", "deploy", "env | sort")))
            did = start_deployment(admin)
            assert wait_final(admin, did)["status"] == "success"
            text = "\n".join(line["message"] for line in deployment_logs(admin, did))
    finally:
        del os.environ["SHIPBOARD_SECRET_KEYS_CANARY"]
    assert "SHIPBOARD_DEPLOYMENT_ID=" in text
    assert "must-not-leak" not in text


def test_failing_step_fails_the_deployment_naming_it(clients: Clients, worker: Any) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(
                ("ok", "build", "true"),
                ("migrate", "deploy", "sleep 0.3; echo nope >&2; exit 3"),
                ("never", "verify", "echo x"),
            ),
        )
        did = start_deployment(admin)
        detail = wait_final(admin, did)
        messages = [line["message"] for line in deployment_logs(admin, did)]
    assert detail["status"] == "failed"
    assert detail["error_message"] == "step 'migrate' (deploy) exited with code 3"
    assert "x" not in messages
    # The deploy step ran for 0.3 s before it failed: that is its stage's time, not 0.
    assert detail["deploy_time"] >= 300
    assert detail["build_time"] is not None


def test_step_timeout(clients: Clients, worker: Any) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            {"steps": [{"name": "slow", "stage": "build", "run": "sleep 20", "timeout_s": 0.5}]},
        )
        started = time.monotonic()
        did = start_deployment(admin)
        detail = wait_final(admin, did)
    assert detail["status"] == "failed"
    assert detail["error_message"] == "step 'slow' (build) timed out after 0.5 s"
    assert time.monotonic() - started < 10


def test_failed_healthcheck_fails_with_measurements(
    clients: Clients, worker: Any, health: Health, tmp_path: Path
) -> None:
    pipeline = pipeline_steps(
        ("ship", "deploy", f"echo $SHIPBOARD_VERSION > {tmp_path / 'current'}")
    )
    pipeline["healthcheck"] = {
        "url": health.url,
        "expect_status": 200,
        "retries": 2,
        "interval_s": 0.05,
    }
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline)
        did = start_deployment(admin, version="2.0.0")
        detail = wait_final(admin, did)
    assert detail["status"] == "failed"
    assert "healthcheck" in detail["error_message"]
    assert "expected HTTP 200, got HTTP 503 after 3 attempt(s)" in detail["error_message"]
    (analysis,) = detail["analysis"]
    assert analysis["result"] == "Failed"
    assert analysis["attempts"] == [{"status": 503}] * 3
    assert health.hits == 3
    assert detail["verify_time"] >= 100  # two 50 ms waits between three attempts, failed or not


def test_auto_rollback_after_failed_healthcheck(
    clients: Clients, worker: Any, health: Health, tmp_path: Path
) -> None:
    pipeline = pipeline_steps(
        ("ship", "deploy", f"echo $SHIPBOARD_VERSION > {tmp_path / 'current'}")
    )
    pipeline["healthcheck"] = {"url": health.url, "retries": 1, "interval_s": 0.05}
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline, auto_rollback=True)
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        bad = start_deployment(admin, version="2.0.0")

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            return detail if detail["status"] == "rolled_back" else None

        wait_for(rolled_back, timeout=30)
        rollbacks = [
            d
            for d in admin.get("/api/v1/deployments", params={"environment": "staging"}).json()[
                "items"
            ]
            if d["rollback_from"] == bad
        ]
        status = subprocess.run(
            [sys.executable, "-m", "shipboard", "status", "--json"],
            env={
                **os.environ,
                "SHIPBOARD_URL": clients.server.base_url,
                "SHIPBOARD_TOKEN": clients.tokens["viewer"],
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    (rollback,) = rollbacks
    assert (rollback["version"], rollback["status"], rollback["triggered_by"]) == (
        "1.0.0",
        "success",
        "shipboard",
    )
    assert (tmp_path / "current").read_text().strip() == "1.0.0"
    import json

    staging = next(row for row in json.loads(status.stdout) if row["environment"] == "staging")
    assert staging["current"]["version"] == "1.0.0"


def test_queue_runs_one_at_a_time_in_creation_order(
    clients: Clients, worker: Any, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(
                (
                    "ship",
                    "deploy",
                    f"echo start $SHIPBOARD_VERSION >> {trace}; sleep 0.3; "
                    f"echo end $SHIPBOARD_VERSION >> {trace}",
                )
            ),
        )
        ids = [start_deployment(admin, version=f"1.0.{i}") for i in range(3)]
        for did in ids:
            assert wait_final(admin, did)["status"] == "success"
    assert trace.read_text().split("\n")[:-1] == [
        "start 1.0.0",
        "end 1.0.0",
        "start 1.0.1",
        "end 1.0.1",
        "start 1.0.2",
        "end 1.0.2",
    ]


def test_cancel_of_a_running_step_kills_its_children(
    clients: Clients, worker: Any, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(("hang", "deploy", f"sleep 60 & echo $! > {pid_file}; wait")),
        )
        did = start_deployment(admin)
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
        child = int(pid_file.read_text())
        response = admin.post(f"/api/v1/deployments/{did}/cancel")
        assert response.status_code == 200, response.text
        detail = wait_final(admin, did)
    assert (detail["status"], detail["error_message"]) == ("failed", "cancelled by admin-user")

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        # A zombie is dead too: it only waits for its parent to read its status.
        stat = Path(f"/proc/{child}/stat")
        return not stat.exists() or stat.read_text().split()[2] == "Z"

    wait_for(gone, timeout=10)


def test_approval_by_another_user_and_self_approval_refused(
    clients: Clients, worker: Any, make_user: Any
) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), require_approval=True
        )
    with clients.as_role("deployer") as deployer:
        did = start_deployment(deployer)
        time.sleep(0.5)
        detail = deployer.get(f"/api/v1/deployments/{did}").json()
        assert (detail["status"], detail["approval"]["required"]) == ("pending", True)
        assert_problem(deployer.post(f"/api/v1/deployments/{did}/approve"), 403)
    other = make_user("approver", "deployer")
    response = httpx.post(
        f"{clients.server.base_url}/api/v1/deployments/{did}/approve",
        headers={"Authorization": f"Bearer {other}"},
    )
    assert response.status_code == 200, response.text
    with clients.as_role("deployer") as deployer:
        detail = wait_final(deployer, did)
    assert detail["status"] == "success"
    assert detail["approval"]["approved_by"] == "approver"


def test_rejection_fails_without_running(clients: Clients, make_user: Any) -> None:
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/development/features/require_approval", json={"enabled": True}
        )
    with clients.as_role("deployer") as deployer:
        did = start_deployment(deployer, env="development")
        assert_problem(
            deployer.post(f"/api/v1/deployments/{did}/status", json={"status": "building"}), 409
        )
    other = make_user("rejecter", "deployer")
    response = httpx.post(
        f"{clients.server.base_url}/api/v1/deployments/{did}/reject",
        headers={"Authorization": f"Bearer {other}"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["error_message"]) == (
        "failed",
        "rejected by rejecter",
    )


def test_frequency_limit_under_concurrent_creates(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/development", json={"limits": {"max_deployment_frequency": 3}}
        )
    results: list[int] = []
    retry_after: list[str] = []

    def create(i: int) -> None:
        with clients.as_role("deployer") as client:
            response = client.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": f"1.{i}", "commit_sha": "abcdef1"},
            )
        results.append(response.status_code)
        if response.status_code == 429:
            retry_after.append(response.headers["retry-after"])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] * 3 + [429] * 7
    assert all(3000 < int(r) <= 3600 for r in retry_after)


def test_killed_worker_fails_the_deployment_once_and_auto_rollback_runs(
    clients: Clients, db: Database, engine: Engine, tmp_path: Path
) -> None:
    from shipboard.pipelines.worker import Worker

    marker = tmp_path / "deploying"
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(
                (
                    "ship",
                    "deploy",
                    f'if [ "$SHIPBOARD_VERSION" = "2.0.0" ]; then touch {marker}; sleep 30; fi',
                )
            ),
            auto_rollback=True,
        )
    env = {
        **os.environ,
        "SHIPBOARD_DATABASE_URL": db.url,
        "SHIPBOARD_HOME": str(clients.server.settings.home),
        "SHIPBOARD_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "worker", "--lease", "1", "--poll", "0.05"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with clients.as_role("admin") as admin:
            good = start_deployment(admin, version="1.0.0")
            assert wait_final(admin, good)["status"] == "success"
            bad = start_deployment(admin, version="2.0.0")
            wait_for(marker.exists)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            time.sleep(1.5)  # let the lease lapse
            survivor = Worker(engine, clients.server.app.state.keyring, poll_s=0.05, lease_s=3)
            assert survivor.reap() == 1
            assert survivor.reap() == 0
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            assert (detail["status"], detail["error_message"]) == (
                "failed",
                "worker lost during deploying",
            )
            # The rollback is queued; the surviving worker runs it.
            assert survivor.step() is True
            final = admin.get(f"/api/v1/deployments/{bad}").json()
            lines = deployment_logs(admin, bad)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert final["status"] == "rolled_back"
    assert sum("worker lost" in line["message"] for line in lines) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_workers_run_fifty_deployments_each_exactly_once(
    clients: Clients, engine: Engine
) -> None:
    import sqlalchemy as sa

    from shipboard.pipelines.worker import Worker, start_in_thread

    with clients.as_role("admin") as admin:
        for env in ("development", "staging"):
            set_pipeline(admin, env, pipeline_steps(("noop", "deploy", "true")))
        ids = [
            start_deployment(admin, env=("development", "staging")[i % 2], version=f"1.0.{i}")
            for i in range(50)
        ]
    workers = [
        start_in_thread(
            Worker(
                engine, clients.server.app.state.keyring, poll_s=0.02, lease_s=10, worker_id=f"w{i}"
            )
        )
        for i in range(2)
    ]
    try:
        with clients.as_role("admin") as admin:
            for did in ids:
                assert wait_final(admin, did, timeout=120)["status"] == "success"
    finally:
        for thread, stop in workers:
            stop.set()
            thread.join(timeout=30)
    with engine.connect() as conn:
        claims = conn.execute(
            sa.text(
                "SELECT deployment_id, count(*) FROM deployment_logs "
                "WHERE message LIKE 'status pending -> building%' GROUP BY deployment_id"
            )
        ).all()
        claimers = set(
            conn.execute(
                sa.text(
                    "SELECT substring(message from '\\(worker (w[0-9])\\)') FROM deployment_logs "
                    "WHERE message LIKE 'status pending -> building%'"
                )
            ).scalars()
        )
    assert len(claims) == 50
    assert all(count == 1 for _, count in claims)
    assert claimers == {"w0", "w1"}


def test_step_output_with_nul_is_stored_with_a_replacement_character(
    clients: Clients, worker: Any
) -> None:
    """A step printing NUL (PostgreSQL cannot store it in text) does not break the worker's
    insert: the NUL becomes U+FFFD and the deployment finishes."""
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline_steps(("nul", "deploy", "printf 'a\\000b\\n'")))
        did = start_deployment(admin)
        detail = wait_final(admin, did)
        messages = [
            line["message"] for line in deployment_logs(admin, did) if line["source"] == "deploy"
        ]
    assert detail["status"] == "success", detail
    assert messages == ["a\ufffdb"]


PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDx3bS6N2kQ0pl6M0Qd1rO8Hn1tN2V8w3g6pZ0zq9T5YwAAAJiU3Xx3lN18\n"
    "dwAAAAtzc2gtZWQyNTUxOQAAACDx3bS6N2kQ0pl6M0Qd1rO8Hn1tN2V8w3g6pZ0zq9T5Yw\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def test_multi_line_secret_is_masked_on_every_line_and_across_chunks(
    clients: Clients, worker: Any
) -> None:
    """A PEM key printed by a step — whole, line by line with a prefix, and written in pieces
    that reach the pipe separately — shows none of its lines in the deployment's log."""
    body = PEM.splitlines()[1:-1]
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/staging/secrets/DEPLOY_KEY", json={"value": PEM}
        ).raise_for_status()
        admin.put(
            "/api/v1/environments/staging/secrets/TOKEN", json={"value": "tok-0123456789abcdef"}
        ).raise_for_status()
        script = (
            'printf "%s\\n" "$DEPLOY_KEY"; '
            'printf "%s\\n" "$DEPLOY_KEY" | sed "s/^/key> /"; '
            # One line of the key, and a single-line secret, split across two writes.
            f"printf 'half:{body[1][:30]}'; sleep 0.3; printf '{body[1][30:]}:end\\n'; "
            "printf 'tok-01234'; sleep 0.3; printf '56789abcdef done\\n'"
        )
        set_pipeline(admin, "staging", pipeline_steps(("leak", "deploy", script)))
        did = start_deployment(admin)
        detail = wait_final(admin, did)
        text = "\n".join(line["message"] for line in deployment_logs(admin, did))
    assert detail["status"] == "success", detail
    for secret_line in body:
        assert secret_line not in text
        assert secret_line[:30] not in text
        assert secret_line[30:] not in text
    assert "tok-0123456789abcdef" not in text
    assert "56789abcdef" not in text
    assert "half:***:end" in text
    assert "*** done" in text
    assert "key> ***" in text


def test_stream_masker_masks_a_secret_split_at_any_point() -> None:
    """Pure: the output cut into two reads at every position, and into one-character reads,
    shows no part of the key (masked whole, or line by line when its first lines came before
    the rest), and keeps what is not secret."""
    from shipboard.pipelines.runner import LineSplitter, StreamMasker, mask_patterns

    output = f"before\n{PEM}\nkey> {PEM.splitlines()[2]}\nafter -----"
    patterns = mask_patterns([PEM])
    cuts = [[output[:i], output[i:]] for i in range(len(output) + 1)] + [list(output)]
    for pieces in cuts:
        masker, splitter, lines = StreamMasker(patterns), LineSplitter(), []
        for piece in pieces:
            lines += splitter.feed(masker.feed(piece))
        lines += splitter.feed(masker.flush(), final=True)
        assert lines[0] == "before"
        assert lines[-2:] == ["key> ***", "after -----"]
        assert set(lines[1:-2]) == {"***"}


def test_healthcheck_url_credentials_stay_out_of_logs_analysis_and_errors(
    clients: Clients, worker: Any, health: Health, tmp_path: Path
) -> None:
    """A healthcheck URL with ``user:pass@`` and ``?token=``: the deployment's log, analysis and
    error message, which every viewer reads, show it without them."""
    pipeline = pipeline_steps(
        ("ship", "deploy", f"echo $SHIPBOARD_VERSION > {tmp_path / 'current'}")
    )
    url = health.url.replace("http://", "http://probe:hc-pass-9@") + "?token=hc-tok-8"
    pipeline["healthcheck"] = {"url": url, "retries": 0, "interval_s": 0.05}
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline)
        did = start_deployment(admin, version="2.0.0")
    with clients.as_role("viewer") as viewer:
        detail = wait_final(viewer, did)
        text = str(detail) + "\n".join(line["message"] for line in deployment_logs(viewer, did))
    assert detail["status"] == "failed"
    assert "hc-pass-9" not in text
    assert "hc-tok-8" not in text
    assert "probe:***@" in text
