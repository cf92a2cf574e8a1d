"""Real scanners run by the worker: bandit on a small vulnerable sample, pip-audit against a local
OSV server (the only faked thing: the internet's vulnerability database)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shipboard.security import runs
from tests.support.live import Clients, free_port
from tests.support.problems import assert_problem

VULNERABLE = """\
import subprocess
import pickle


def run(cmd):
    return subprocess.call(cmd, shell=True)


def load(blob):
    return pickle.loads(blob)


def check(password):
    assert password == "hunter2"
"""


@pytest.fixture
def roots(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(clients.server.app.state.settings, "scan_roots", str(tmp_path))
    return tmp_path


def _scan(client: Any, **body: str) -> dict[str, Any]:
    response = client.post("/api/v1/security/scans", json={"environment": "staging", **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _run(engine: Engine, root: Path) -> None:
    assert runs.run_next(engine, worker="test", roots=[str(root)])


def test_bandit_scan_then_fix_one_and_move_the_rest(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    app = roots / "app"
    app.mkdir()
    (app / "service.py").write_text(VULNERABLE)
    with clients.as_role("deployer") as client:
        pending = _scan(client, type="sast", target=str(app))
        assert pending["status"] == "pending"
        _run(engine, roots)
        scan = client.get(f"/api/v1/security/scans/{pending['id']}").json()
        assert scan["status"] == "completed", scan
        before = {
            f["title"]: f
            for f in client.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
        assert len(before) >= 3
        fixed_title = next(t for t in before if "shell" in t.lower())
        # Fix the shell=True call and push everything else down by a few lines.
        (app / "service.py").write_text("\n\n\n" + VULNERABLE.replace("cmd, shell=True", "[cmd]"))
        _scan(client, type="sast", target=str(app))
        _run(engine, roots)
        after = {
            f["title"]: f
            for f in client.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
    assert after[fixed_title]["status"] == "resolved"
    for title, finding in before.items():
        if title != fixed_title:
            assert after[title]["status"] == "open"
            assert after[title]["fingerprint"] == finding["fingerprint"]
            assert after[title]["location"] != finding["location"]  # the lines moved


class OSV:
    """A local OSV-compatible /v1/query endpoint with one advisory for requests 2.19.0."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                package = query.get("package", {}).get("name", "").lower()
                vulns = []
                if package == "requests" and query.get("version") == "2.19.0":
                    vulns = [
                        {
                            "id": "PYSEC-2018-28",
                            "aliases": ["CVE-2018-18074"],
                            "summary": "requests leaks Authorization headers on redirects",
                            "details": "Requests sends Authorization headers to http URIs.",
                            "affected": [
                                {
                                    "package": {"name": "requests", "ecosystem": "PyPI"},
                                    "ranges": [
                                        {
                                            "type": "ECOSYSTEM",
                                            "events": [{"introduced": "0"}, {"fixed": "2.20.0"}],
                                        }
                                    ],
                                }
                            ],
                        }
                    ]
                body = json.dumps({"vulns": vulns}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/query"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def osv() -> Iterator[OSV]:
    server = OSV()
    yield server
    server.server.shutdown()


def test_pip_audit_against_a_local_osv_server(
    clients: Clients, engine: Engine, roots: Path, osv: OSV
) -> None:
    requirements = roots / "requirements.txt"
    requirements.write_text("requests==2.19.0\nidna==3.7\n")
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging", json={"config": {"security": {"osv_url": osv.url}}}
        )
        pending = _scan(admin, type="dependency", target=str(requirements))
        _run(engine, roots)
        scan = admin.get(f"/api/v1/security/scans/{pending['id']}").json()
        findings = admin.get(f"/api/v1/security/scans/{pending['id']}/findings").json()["items"]
    assert scan["status"] == "completed", scan
    (finding,) = findings
    assert finding["title"] == "PYSEC-2018-28 in requests:2.19.0"
    assert finding["location"] == "requests@2.19.0"
    assert finding["remediation"] == "Upgrade to version: 2.20.0"


def test_missing_scanner_fails_the_scan_with_a_reason(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    (roots / "main.tf").write_text('resource "aws_s3_bucket" "b" {}\n')
    with clients.as_role("deployer") as client:
        pending = _scan(client, type="iac", target=str(roots), tool="trivy")
        _run(engine, roots)
        scan = client.get(f"/api/v1/security/scans/{pending['id']}").json()
    assert scan["status"] == "failed"
    assert scan["error_message"] == "trivy is not installed"


def test_targets_outside_the_roots_are_refused(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    with clients.as_role("deployer") as client:
        body = assert_problem(
            client.post(
                "/api/v1/security/scans",
                json={"environment": "staging", "type": "sast", "target": "/etc"},
            ),
            422,
        )
        assert "outside the allowed scan roots" in str(body["detail"])
        assert_problem(
            client.post(
                "/api/v1/security/scans",
                json={"environment": "staging", "type": "sast", "target": str(roots / ".." / "..")},
            ),
            422,
        )
        assert client.get("/api/v1/security/scans").json()["items"] == []


def test_scheduled_scans_fire_once_per_cron_tick(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from shipboard.jobs.schedule import Schedule
    from shipboard.security import tasks

    (roots / "app.py").write_text(VULNERABLE)
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "security": {
                        "schedule": [
                            {"type": "sast", "target": str(roots), "cron": "0 * * * *"},
                        ]
                    }
                }
            },
        )

    def requested(now: datetime) -> object:
        # A new schedule each time, as after a restart: the last run is the database's.
        schedule = Schedule(engine, tasks.scheduled(roots=[str(roots)]))
        ran = schedule.run_if_due(schedule.task("security.scheduled_scans"), now=now)
        assert ran is not None
        return ran.result

    start = datetime(2026, 11, 26, 9, 59, 30, tzinfo=UTC)
    assert requested(start) == 0  # the first look on this database only sets the clock
    assert requested(start + timedelta(seconds=20)) == 0
    assert requested(start + timedelta(seconds=40)) == 1  # 10:00 passed
    assert requested(start + timedelta(seconds=90)) == 0
    _run(engine, roots)
    with clients.as_role("viewer") as viewer:
        (scan,) = viewer.get("/api/v1/security/scans").json()["items"]
    assert (scan["type"], scan["status"]) == ("sast", "completed")


def test_scan_run_cli_waits_and_prints_the_summary(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    import os
    import subprocess
    import sys
    import threading

    from shipboard.jobs.queue import QueueWorker
    from shipboard.security import tasks

    scans = QueueWorker(engine, tasks.jobs(roots=[str(roots)]), poll_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=scans.run, args=(stop,), daemon=True)
    thread.start()
    (roots / "app.py").write_text(VULNERABLE)
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["deployer"],
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipboard",
            "scan",
            "run",
            "sast",
            "--env",
            "staging",
            "--target",
            str(roots),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stop.set()
    thread.join(timeout=30)
    assert result.returncode == 0, result.stderr
    scan = json.loads(result.stdout.strip().splitlines()[-1])
    assert scan["status"] == "completed"
    assert scan["summary"]["total_findings"] >= 3


def _tool_or_skip(tool: str) -> None:
    import shutil

    from tests.support.databases import IN_CI

    path = os.environ.get("SHIPBOARD_SCANNER_PATH")
    if not (shutil.which(tool, path=path) if path else shutil.which(tool)):
        if IN_CI:
            pytest.fail(
                f"{tool} is not installed (make tools); under CI=true the scanner tests must run"
            )
        pytest.skip(f"{tool} is not installed: run `make tools`")


SEMGREP_RULES = """\
rules:
  - id: no-eval
    pattern: eval(...)
    message: eval() runs arbitrary code
    languages: [python]
    severity: ERROR
    metadata:
      cwe: "CWE-95: Improper Neutralization of Directives in Dynamically Evaluated Code"
  - id: shell-true
    pattern: subprocess.call(..., shell=True)
    message: a shell runs this command
    languages: [python]
    severity: WARNING
"""


def test_semgrep_with_local_rules_then_fix_one_and_move_the_rest(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    _tool_or_skip("semgrep")
    rules = roots / "rules.yml"
    rules.write_text(SEMGREP_RULES)
    app = roots / "src"
    app.mkdir()
    code = (
        "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
        "\n\ndef calc(expr):\n    return eval(expr)\n"
    )
    (app / "tool.py").write_text(code)
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"security": {"semgrep_rules": str(rules)}}},
        )
        pending = _scan(admin, type="sast", target=str(app), tool="semgrep")
        _run(engine, roots)
        assert admin.get(f"/api/v1/security/scans/{pending['id']}").json()["status"] == "completed"
        before = {
            f["title"]: f
            for f in admin.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
        assert set(before) == {"no-eval", "shell-true"}
        assert before["no-eval"]["severity"] == "high"
        assert before["no-eval"]["cwe_id"] == "CWE-95"
        (app / "tool.py").write_text("\n\n" + code.replace("cmd, shell=True", "[cmd]"))
        _scan(admin, type="sast", target=str(app), tool="semgrep")
        _run(engine, roots)
        after = {
            f["title"]: f
            for f in admin.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
    assert after["shell-true"]["status"] == "resolved"
    assert after["no-eval"]["status"] == "open"
    assert after["no-eval"]["fingerprint"] == before["no-eval"]["fingerprint"]
    assert after["no-eval"]["location"] != before["no-eval"]["location"]


TERRAFORM = """\
resource "aws_s3_bucket" "public" {
  bucket = "shipboard-public"
  acl    = "public-read"
}

resource "aws_s3_bucket" "logs" {
  bucket = "shipboard-logs"
}
"""


def test_checkov_then_remove_one_resource(clients: Clients, engine: Engine, roots: Path) -> None:
    _tool_or_skip("checkov")
    infra = roots / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(TERRAFORM)
    with clients.as_role("deployer") as client:
        pending = _scan(client, type="iac", target=str(infra))
        _run(engine, roots)
        scan = client.get(f"/api/v1/security/scans/{pending['id']}").json()
        assert scan["status"] == "completed", scan
        first = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
        logs_checks = {f["fingerprint"] for f in first if "aws_s3_bucket.logs" in f["description"]}
        public_checks = {
            f["fingerprint"] for f in first if "aws_s3_bucket.public" in f["description"]
        }
        assert logs_checks
        assert public_checks
        (infra / "main.tf").write_text("\n\n" + TERRAFORM.split("\n\n", maxsplit=1)[0] + "\n")
        _scan(client, type="iac", target=str(infra))
        _run(engine, roots)
        after = {
            f["fingerprint"]: f["status"]
            for f in client.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
    assert {after[f] for f in logs_checks} == {"resolved"}
    assert {after[f] for f in public_checks} == {"open"}


def test_shipboards_own_files_are_never_scan_targets(
    clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Roots that contain SHIPBOARD_HOME (the default: home ./.shipboard, roots .) still do not
    let a scanner read the key file, the backups or the database, by any spelling."""
    settings = clients.server.settings
    home = Path(settings.home).resolve()
    (home / "backups").mkdir(exist_ok=True)
    sqlite = settings.effective_database_url.startswith("sqlite:///")
    database = Path(settings.effective_database_url.removeprefix("sqlite:///"))
    roots = [str(home.parent), str(tmp_path)]
    if sqlite:
        roots.append(str(database.parent))
    monkeypatch.setattr(settings, "scan_roots", ":".join(roots))
    (tmp_path / "innocent").symlink_to(home / "secret.key")
    targets = [
        str(home),
        str(home / "secret.key"),
        str(home / "backups"),
        f"{home.parent}/./{home.name}/../{home.name}/secret.key",
        str(tmp_path / "innocent"),
        str(home.parent),  # a directory holding the home: the scanner would walk into it
    ]
    if sqlite:
        targets += [str(database), f"{database}-wal"]
    with clients.as_role("deployer") as client:
        for target in targets:
            body = assert_problem(
                client.post(
                    "/api/v1/security/scans",
                    json={"environment": "staging", "type": "dependency", "target": target},
                ),
                422,
            )
            assert body["errors"] == [{"loc": ["body", "target"], "msg": body["detail"]}], target
            assert "Shipboard's own files" in str(body["detail"]), target
        assert client.get("/api/v1/security/scans").json()["items"] == []


def test_scanner_errors_never_show_the_line_they_quote(
    clients: Clients, engine: Engine, roots: Path
) -> None:
    """pip-audit quotes the requirement line it cannot parse on stderr; a viewer reading the
    scan sees a short reason, and the quoted line stays in the server log."""
    secret = "verysecretvalue4f2a9"
    (roots / ".env").write_text(f"AWS_SECRET_ACCESS_KEY={secret}\n")
    with clients.as_role("deployer") as client:
        pending = _scan(client, type="dependency", target=str(roots / ".env"))
    _run(engine, roots)
    with clients.as_role("viewer") as viewer:
        scan = viewer.get(f"/api/v1/security/scans/{pending['id']}").json()
        listed = viewer.get("/api/v1/security/scans").text
    assert scan["status"] == "failed"
    assert secret not in str(scan)
    assert secret not in listed
    assert scan["error_message"].startswith("pip-audit failed (exit 1)"), scan
    assert str(pending["id"]) in scan["error_message"]  # what to look for in the server log
