"""Lifecycle across scans: a failed run resolves nothing, a partial run resolves only what it
covered. The reports come from the real scanners, run here on files the tests write."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from shipboard.security import runs, scanners
from tests.conftest import Clients

FIXTURES = Path(__file__).parent / "fixtures" / "security"

SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
PICKLE = "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"
SEMGREP_RULES = """\
rules:
  - id: no-eval
    pattern: eval(...)
    message: eval() runs arbitrary code
    languages: [python]
    severity: ERROR
"""


def _bandit(target: Path) -> bytes:
    done = subprocess.run(
        [scanners.executable("bandit"), "-r", str(target), "-f", "json", "-q"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.stdout.strip(), done.stderr
    return done.stdout


def _semgrep(rules: Path, target: Path) -> bytes:
    try:
        binary = scanners.executable("semgrep")
    except scanners.ScanError:
        pytest.skip("semgrep is not installed: run `make tools`")
    done = subprocess.run(
        [
            binary,
            "--config",
            str(rules),
            "--json",
            "--metrics=off",
            "--disable-version-check",
            str(target),
        ],
        capture_output=True,
        check=False,
        timeout=300,
        cwd=target.parent,
    )
    assert done.stdout.strip(), done.stderr
    return done.stdout


def _import(client: httpx.Client, data: bytes, **form: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/security/scans/import",
        files={"file": ("report.json", data, "application/json")},
        data={"environment": "staging", **form},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _statuses(client: httpx.Client) -> dict[str, str]:
    items = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
        "items"
    ]
    return {f["location"]: f["status"] for f in items}


def test_bandit_run_that_read_nothing_is_a_failed_scan_and_resolves_nothing(
    clients: Clients, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "shell.py").write_text(SHELL)
    (app / "store.py").write_text(PICKLE)
    with clients.as_role("deployer") as client:
        first = _import(client, _bandit(app))
        assert first["new"] >= 3
        # bandit exits 0 here and writes a report: no results, one error.
        failed = _import(client, _bandit(tmp_path / "missing"))
        assert failed["scan"]["status"] == "failed"
        assert "No such file or directory" in failed["scan"]["error_message"]
        assert (failed["resolved"], failed["findings"]) == (0, 0)
        assert set(_statuses(client).values()) == {"open"}


def test_bandit_partial_run_resolves_only_the_files_it_read(
    clients: Clients, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "shell.py").write_text(SHELL)
    (app / "store.py").write_text(PICKLE)
    with clients.as_role("deployer") as client:
        _import(client, _bandit(app))
        before = _statuses(client)
        # shell.py no longer parses (its finding is still there), store.py is fixed.
        (app / "shell.py").write_text(SHELL + "def broken(:\n")
        (app / "store.py").write_text("import json\n")
        partial = _import(client, _bandit(app))
        assert partial["scan"]["status"] == "completed"
        after = _statuses(client)
    shell = [loc for loc in before if "shell.py" in loc]
    store = [loc for loc in before if "store.py" in loc]
    assert shell
    assert store
    assert {after[loc] for loc in shell} == {"open"}
    assert {after[loc] for loc in store} == {"resolved"}
    assert partial["resolved"] == len(store)


def test_semgrep_run_with_a_broken_rules_file_resolves_nothing(
    clients: Clients, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "src"
    app.mkdir()
    (app / "calc.py").write_text("def calc(expr):\n    return eval(expr)\n")
    rules = tmp_path / "rules.yml"
    rules.write_text(SEMGREP_RULES)
    with clients.as_role("admin") as client:
        assert _import(client, _semgrep(rules, app))["new"] == 1
        rules.write_text(SEMGREP_RULES.replace("message:", "mesage:"))
        report = _semgrep(rules, app)
        assert json.loads(report)["errors"]
        imported = _import(client, report)
        assert imported["scan"]["status"] == "failed"
        assert "Invalid rule schema" in imported["scan"]["error_message"]
        assert imported["resolved"] == 0
        assert set(_statuses(client).values()) == {"open"}
        # The same run through the worker: semgrep exits 7 and the scan fails.
        monkeypatch.setattr(clients.server.app.state.settings, "scan_roots", str(tmp_path))
        client.patch(
            "/api/v1/environments/staging",
            json={"config": {"security": {"semgrep_rules": str(rules)}}},
        )
        response = client.post(
            "/api/v1/security/scans",
            json={"environment": "staging", "type": "sast", "target": str(app), "tool": "semgrep"},
        )
        assert response.status_code == 202, response.text
        assert runs.run_next(engine, worker="test", roots=[str(tmp_path)])
        scan = client.get(f"/api/v1/security/scans/{response.json()['id']}").json()
        assert scan["status"] == "failed", scan
        assert "exit 7" in scan["error_message"]
        assert set(_statuses(client).values()) == {"open"}


def test_sarif_run_that_did_not_succeed_resolves_nothing(clients: Clients) -> None:
    raw = (FIXTURES / "sarif/bandit-1.8.6__devluchops_bandit-results.sarif").read_bytes()
    broken = json.loads(raw)
    broken["runs"][0]["results"] = []
    broken["runs"][0]["invocations"] = [
        {
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": "out of memory while parsing app.py"}}
            ],
        }
    ]
    with clients.as_role("deployer") as client:
        assert _import(client, raw)["new"] == 7
        failed = _import(client, json.dumps(broken).encode())
        assert failed["scan"]["status"] == "failed"
        assert "out of memory" in failed["scan"]["error_message"]
        assert failed["resolved"] == 0
        assert set(_statuses(client).values()) == {"open"}


def test_trivy_report_with_an_error_and_no_results_resolves_nothing(clients: Clients) -> None:
    raw = (FIXTURES / "trivy/trivy-dev__trivy_alpine-310.json.golden.json").read_bytes()
    broken = json.loads(raw)
    del broken["Results"]
    broken["Error"] = "unable to initialize a scanner: unable to find the specified image"
    with clients.as_role("deployer") as client:
        assert _import(client, raw)["new"] > 0
        failed = _import(client, json.dumps(broken).encode())
        assert failed["scan"]["status"] == "failed"
        assert "unable to find the specified image" in failed["scan"]["error_message"]
        assert failed["resolved"] == 0
        assert set(_statuses(client).values()) == {"open"}
