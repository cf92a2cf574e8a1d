"""Importing reports through the API: the scan, its findings, and their lifecycle across scans."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.factories import created, current_findings, import_report
from tests.support.live import Clients
from tests.support.problems import assert_problem


def test_import_creates_a_completed_scan_with_summary_and_findings(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        body = created(import_report(client, "npm_audit/dd_npm6_many_vuln.json"))
        scan = body["scan"]
        assert (scan["type"], scan["status"], body["tool"], body["findings"]) == (
            "dependency",
            "completed",
            "npm audit",
            5,
        )
        assert scan["summary"]["high_findings"] == 3
        assert scan["summary"]["total_findings"] == 5
        assert scan["summary"]["compliance_score"] == 100 - (3 * 5 + 3 + 1)
        findings = client.get(f"/api/v1/security/scans/{scan['id']}/findings").json()["items"]
    assert len(findings) == 5


def test_moved_lines_keep_the_finding_and_a_new_fingerprint_resolves_it(clients: Clients) -> None:
    with clients.as_role("service") as client:
        first = created(import_report(client, "semgrep/dd_close_old_findings_report_line31.json"))
        second = created(
            import_report(client, "semgrep/dd_close_old_findings_report_second_run_line24.json")
        )
        third = created(
            import_report(
                client, "semgrep/dd_close_old_findings_report_third_run_different_unique_id.json"
            )
        )
        current = current_findings(client)
    assert (first["new"], second["new"], second["resolved"]) == (1, 0, 0)
    assert (third["new"], third["resolved"]) == (1, 1)
    states = sorted(f["status"] for f in current)
    assert states == ["open", "resolved"]
    resolved = next(f for f in current if f["status"] == "resolved")
    assert resolved["resolved_at"] is not None
    assert resolved["location"].endswith(":24")  # its latest occurrence moved


def test_subset_resolves_and_the_full_report_reopens_the_same_identities(clients: Clients) -> None:
    with clients.as_role("service") as client:
        full = created(import_report(client, "trivy/dd_kubernetes.json"))
        subset = created(import_report(client, "trivy/dd_kubernetes_fabricated_subset.json"))
        after_subset = current_findings(client)
        again = created(import_report(client, "trivy/dd_kubernetes.json"))
        after_again = current_findings(client)
    assert full["new"] == 20
    assert (subset["new"], subset["resolved"]) == (0, 7)
    assert sorted(f["status"] for f in after_subset).count("resolved") == 7
    assert (again["new"], again["reopened"]) == (0, 7)
    assert all(f["status"] == "open" for f in after_again)
    assert sum(f["reopened_count"] for f in after_again) == 7
    assert {f["fingerprint"] for f in after_subset} == {f["fingerprint"] for f in after_again}


def test_triage_carries_forward_and_suppressions_are_false_positives(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        created(import_report(client, "pip_audit/dd_many_vulns_new.json"))
        target = current_findings(client)[0]
        response = client.patch(
            f"/api/v1/security/findings/{target['id']}",
            json={"status": "accepted_risk", "reason": "not reachable from our code"},
        )
        assert response.status_code == 204, response.text
        created(import_report(client, "pip_audit/dd_many_vulns_new.json"))
        triaged = [f for f in current_findings(client) if f["fingerprint"] == target["fingerprint"]]
        assert triaged[0]["status"] == "triaged"
        assert triaged[0]["triage_reason"] == "not reachable from our code"
        created(
            import_report(
                client,
                "sarif/sarif-spec-example__dd_suppression_test.sarif",
                environment="development",
            )
        )
        dev = client.get("/api/v1/security/findings", params={"environment": "development"}).json()[
            "items"
        ]
    assert sorted(f["status"] for f in dev) == ["open", "open", "triaged", "triaged", "triaged"]
    with clients.as_role("viewer") as viewer:
        assert_problem(
            viewer.patch(
                f"/api/v1/security/findings/{target['id']}", json={"status": "fixed", "reason": "x"}
            ),
            403,
        )


def test_bad_reports_are_refused_and_store_nothing(clients: Clients, engine: Engine) -> None:
    with clients.as_role("deployer") as client:
        for content, expected in (
            (b'{"runs": [', "not valid JSON"),
            (b'{"version": "2.0.0", "$schema": "x", "runs": []}', "SARIF version"),
            (b"\x89PNG\r\n\x1a\n\x00\x01", "not UTF-8"),
            (b'{"hello": 1}', "unrecognized report"),
        ):
            response = client.post(
                "/api/v1/security/scans/import",
                files={"file": ("x.json", content, "application/json")},
                data={"environment": "staging"},
            )
            body = assert_problem(response, 422)
            assert expected in str(body["detail"])
        assert_problem(import_report(client, "bandit/dd_no_vuln.json", environment="qa"), 422)
    with clients.as_role("admin") as admin:
        admin.patch("/api/v1/environments/staging", json={"config": {"max_file_size_mb": 0}})
        admin.patch("/api/v1/environments/development", json={"config": {"max_file_size_mb": 1}})
        big = admin.post(
            "/api/v1/security/scans/import",
            files={
                "file": ("big.json", b"{" + b" " * (2 * 1024 * 1024) + b"}", "application/json")
            },
            data={"environment": "development"},
        )
        assert_problem(big, 413)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM security_scans")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM security_findings")).scalar() == 0


def test_empty_and_odd_inputs_import(clients: Clients) -> None:
    with clients.as_role("service") as client:
        for relative in (
            "sarif/trivy-0.68.2__chiju_trivy-results_EMPTY.sarif",
            "bandit/dd_no_vuln.json",
            "checkov/dd_checkov2-report-0-vuln.json",
            "pip_audit/dd_zero_vulns_new.json",
        ):
            assert created(import_report(client, relative))["findings"] == 0
        dockle = created(
            import_report(client, "sarif/dockle-0.3.15__dd_dockle_0_3_15_NOLOCATIONS.sarif")
        )
        assert (dockle["findings"], dockle["scan"]["type"]) == (4, "container")


def test_findings_filter_by_type_tool_and_cwe(clients: Clients) -> None:
    with clients.as_role("service") as client:
        created(import_report(client, "sarif/codeql-2.5.4__dd_codeQL-output.sarif"))
        created(import_report(client, "pip_audit/dd_many_vulns_new.json"))
        assert len(current_findings(client, type="dependency")) == 7
        assert len(current_findings(client, tool="pip-audit")) == 7
        with_cwe = [f for f in current_findings(client, type="sast") if f["cwe_id"]]
        cwe = with_cwe[0]["cwe_id"]
        assert all(f["cwe_id"] == cwe for f in current_findings(client, cwe=cwe))
        assert_problem(client.get("/api/v1/security/findings", params={"cwe": "79"}), 422)


def test_a_two_gigabyte_upload_is_refused_before_it_is_read(clients: Clients) -> None:
    import socket

    host, port = "127.0.0.1", clients.server.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /api/v1/security/scans/import HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                f"Authorization: Bearer {clients.tokens['service']}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {2 * 1024**3}\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"--x\r\n" + b"a" * 65536)
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer
