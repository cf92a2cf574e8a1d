"""Lifecycle across scans: a failed run resolves nothing, a partial run resolves only what it
covered. The reports come from the real scanners, run here on files the tests write."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.security import runs, scanners
from shipboard.security.importers.common import fingerprint, snippet_key
from tests.support.live import Clients
from tests.support.paths import FIXTURES as FIXTURES_ROOT

FIXTURES = FIXTURES_ROOT / "security"

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


# --- scope: what was scanned (issue 19 item 8) ---


def test_a_trivy_scan_of_another_image_leaves_the_first_images_findings_open(
    clients: Clients,
) -> None:
    raw = (FIXTURES / "trivy/trivy-dev__trivy_alpine-310.json.golden.json").read_bytes()
    other = json.loads(raw)
    other["ArtifactName"] = "registry.example/other:1"
    other["Results"] = []
    clean = json.loads(raw)
    clean["Results"] = []
    with clients.as_role("deployer") as client:
        first = _import(client, raw)
        assert first["target"] == json.loads(raw)["ArtifactName"]
        assert first["new"] > 0
        second = _import(client, json.dumps(other).encode())
        assert second["target"] == "registry.example/other:1"
        assert second["resolved"] == 0
        assert set(_statuses(client).values()) == {"open"}
        # The same image scanned clean resolves them.
        assert _import(client, json.dumps(clean).encode())["resolved"] == first["new"]
        assert set(_statuses(client).values()) == {"resolved"}


def test_the_import_forms_target_scopes_the_lifecycle(clients: Clients, tmp_path: Path) -> None:
    for name, code in (("a", SHELL), ("b", PICKLE)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.py").write_text(code)
    with clients.as_role("deployer") as client:
        a = _import(client, _bandit(tmp_path / "a"), target="service-a")
        b = _import(client, _bandit(tmp_path / "b"), target="service-b")
        assert (a["target"], b["target"]) == ("service-a", "service-b")
        assert b["resolved"] == 0
        assert set(_statuses(client).values()) == {"open"}
        findings = client.get(
            "/api/v1/security/findings", params={"environment": "staging", "target": "service-a"}
        ).json()["items"]
        assert {f["target"] for f in findings} == {"service-a"}
        assert len(findings) == a["new"]
        (tmp_path / "a" / "main.py").write_text("import json\n")
        assert _import(client, _bandit(tmp_path / "a"), target="service-a")["resolved"] == a["new"]
        assert (
            client.post(
                "/api/v1/security/scans/import",
                files={"file": ("r.json", _bandit(tmp_path / "a"), "application/json")},
                data={"environment": "staging", "target": "x" * 5000},
            ).status_code
            == 422
        )


def test_identities_from_before_targets_are_adopted_with_their_triage(
    clients: Clients, engine: Engine
) -> None:
    raw = (FIXTURES / "trivy/trivy-dev__trivy_alpine-310.json.golden.json").read_bytes()
    with clients.as_role("deployer") as client:
        first = _import(client, raw)
        finding = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ][0]
        assert (
            client.patch(
                f"/api/v1/security/findings/{finding['id']}",
                json={"status": "accepted_risk", "reason": "base image pinned"},
            ).status_code
            == 204
        )
        # What migration 20261203_0017 leaves for identities whose scan named no target.
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE finding_identities SET target = NULL"))
        again = _import(client, raw)
        assert (again["new"], again["resolved"], again["reopened"]) == (0, 0, 0)
        items = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
    assert len(items) == first["new"]
    assert {f["target"] for f in items} == {json.loads(raw)["ArtifactName"]}
    kept = next(f for f in items if f["fingerprint"] == finding["fingerprint"])
    assert kept["triage_status"] == "accepted_risk"


# --- identity that survives unrelated edits (issue 19 item 7) ---

SOURCES = FIXTURES / "source"


def _write_sources(app: Path) -> None:
    app.mkdir()
    for source in SOURCES.glob("*.py.txt"):
        (app / source.name.removesuffix(".txt")).write_text(source.read_text())


def _flagged_lines(report: bytes) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for result in json.loads(report)["results"]:
        path = result.get("filename") or result["path"]
        line = result.get("line_number") or result["start"]["line"]
        out.setdefault(path, []).append(line)
    return out


def _insert_above(text: str, lines: list[int]) -> str:
    rows = text.split("\n")
    for line in sorted(set(lines), reverse=True):
        indent = rows[line - 1][: len(rows[line - 1]) - len(rows[line - 1].lstrip())]
        rows.insert(line - 1, f"{indent}# reviewed")
    return "\n".join(rows)


def _delete_blank_above(text: str, lines: list[int]) -> str:
    rows = text.split("\n")
    doomed = set()
    for line in lines:
        for above in range(line - 2, max(line - 8, 0), -1):
            if not rows[above].strip():
                doomed.add(above)
                break
    return "\n".join(row for index, row in enumerate(rows) if index not in doomed)


def _edit_around(text: str, lines: list[int]) -> str:
    rows = text.split("\n")
    flagged = {line - 1 for line in lines}
    for line in lines:
        for near in (line - 2, line):
            if 0 <= near < len(rows) and near not in flagged:
                row = rows[near]
                if row.strip() == "# reviewed":
                    rows[near] = row.replace("# reviewed", "# reviewed again, still fine")
                elif not row.strip():
                    rows[near] = "# spacer"
    return "\n".join(rows)


MUTATIONS = (_insert_above, _delete_blank_above, _edit_around)


def _mutate_and_rescan(client: httpx.Client, app: Path, scan: Any, report: bytes) -> None:
    """Each mutation around every finding, then a rescan that must change nothing."""
    before = {
        f["fingerprint"]: f
        for f in client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
    }
    for mutate in MUTATIONS:
        changes = 0
        for path, lines in _flagged_lines(report).items():
            source = Path(path) if Path(path).is_absolute() else app.parent / path
            changed = mutate(source.read_text(), lines)
            changes += changed != source.read_text()
            ast.parse(changed)
            source.write_text(changed)
        assert changes, mutate.__name__
        report = scan()
        imported = _import(client, report)
        assert (imported["new"], imported["resolved"], imported["reopened"]) == (0, 0, 0), (
            mutate.__name__
        )
        after = {
            f["fingerprint"]: f
            for f in client.get(
                "/api/v1/security/findings", params={"environment": "staging"}
            ).json()["items"]
        }
        assert set(after) == set(before), mutate.__name__
        for print_, finding in before.items():
            assert after[print_]["status"] == finding["status"], mutate.__name__
            assert after[print_]["triage_status"] == finding["triage_status"]
        moved = [f for f in after if after[f]["location"] != before[f]["location"]]
        assert moved, mutate.__name__


def test_bandit_findings_keep_their_identity_and_triage_when_lines_around_them_change(
    clients: Clients, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    _write_sources(app)
    with clients.as_role("deployer") as client:
        report = _bandit(app)
        first = _import(client, report)
        assert first["new"] == len(json.loads(report)["results"]) == 18
        items = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
        # Four identical `import subprocess` lines: four findings, told apart by their order.
        imports = [f for f in items if "subprocess module" in f["title"]]
        assert len({f["fingerprint"] for f in imports}) == 4
        assert (
            client.patch(
                f"/api/v1/security/findings/{imports[1]['id']}",
                json={"status": "accepted_risk", "reason": "fixed argument lists"},
            ).status_code
            == 204
        )
        _mutate_and_rescan(client, app, lambda: _bandit(app), report)


def test_semgrep_findings_keep_their_identity_when_lines_around_them_change(
    clients: Clients, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    _write_sources(app)
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n"
        "  - id: popen\n    pattern: subprocess.Popen(...)\n    message: a child process\n"
        "    languages: [python]\n    severity: WARNING\n"
        "  - id: pickle\n    pattern: pickle.load(...)\n    message: unpickling\n"
        "    languages: [python]\n    severity: ERROR\n"
    )
    with clients.as_role("deployer") as client:
        report = _semgrep(rules, app)
        first = _import(client, report)
        assert first["new"] == len(json.loads(report)["results"]) >= 4
        _mutate_and_rescan(client, app, lambda: _semgrep(rules, app), report)


def test_bandit_identities_from_the_context_snippet_scheme_are_adopted(
    clients: Clients, engine: Engine, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    _write_sources(app)
    report = _bandit(app)
    # Identities as the previous scheme keyed them: the `code` snippet with its context lines.
    legacy = {}
    for result in json.loads(report)["results"]:
        rule = f"{result['test_id']}:{result['test_name']}"
        key = snippet_key(result["code"])
        legacy[(result["issue_text"], result["filename"], result["line_number"])] = fingerprint(
            "bandit", rule, result["filename"], key
        )
    with clients.as_role("deployer") as client:
        first = _import(client, report)
        items = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
        # Two `return subprocess.call(args)` between `try:` and `except OSError:` had one
        # snippet, so the old scheme kept them as one identity: the second is new now.
        with engine.begin() as conn:
            kept: set[str] = set()
            for item in items:
                path, line = item["location"].rsplit(":", 1)
                old = legacy[(item["title"], path, int(line))]
                params = {"fp": old, "id": item["id"]}
                if old in kept:
                    conn.execute(
                        sa.text("DELETE FROM finding_identities WHERE latest_finding_id = :id"),
                        params,
                    )
                    continue
                kept.add(old)
                conn.execute(
                    sa.text(
                        "UPDATE finding_identities SET fingerprint = :fp, target = NULL"
                        " WHERE latest_finding_id = :id"
                    ),
                    params,
                )
        assert len(kept) == first["new"] - 1
        again = _import(client, report)
        assert (again["new"], again["resolved"], again["reopened"]) == (1, 0, 0)
        after = client.get("/api/v1/security/findings", params={"environment": "staging"}).json()[
            "items"
        ]
    assert len(after) == first["new"]
    assert {f["fingerprint"] for f in after} == {f["fingerprint"] for f in items}
    assert {f["target"] for f in after} == {""}
