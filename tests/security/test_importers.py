"""Every fixture format imports with the counts and severities of the fixtures' MANIFEST.

Where Shipboard's mapping differs from DefectDojo's the test says so: the spec has no Info
severity, so what DefectDojo calls Info is low here.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shipboard.security.importers import ImportFailed, parse_report
from tests.support.paths import FIXTURES as FIXTURES_ROOT

FIXTURES = FIXTURES_ROOT / "security"


def _report(relative: str) -> tuple[object, Counter[str]]:
    report = parse_report((FIXTURES / relative).read_bytes())
    weighted = Counter()
    for finding in report.findings:
        weighted[finding.severity] += finding.occurrences
    return report, weighted


# file -> (format, tool, scan type, results in the file, severities with DD's Info counted as low)
CASES = {
    "sarif/semgrep-1.69.0__dd_issue_10191.sarif.json": (
        "sarif",
        "sast",
        77,
        {"critical": 34, "high": 1, "medium": 42},
    ),
    "sarif/codeql-2.5.4__dd_codeQL-output.sarif": (
        "sarif",
        "sast",
        72,
        {"high": 11, "medium": 4, "low": 57},
    ),
    "sarif/bandit-1.8.6__devluchops_bandit-results.sarif": (
        "sarif",
        "sast",
        7,
        {"high": 3, "medium": 2, "low": 2},
    ),
    "sarif/trivy-dev__trivy_alpine-310.sarif.golden.json": ("sarif", "sast", 4, {"medium": 4}),
    "sarif/trivy-0.68.2__chiju_trivy-results_EMPTY.sarif": ("sarif", "sast", 0, {}),
    "sarif/checkov-3.2.495__chiju_results_sarif.sarif": ("sarif", "iac", 4, {"high": 4}),
    "sarif/dockle-0.3.15__dd_dockle_0_3_15_NOLOCATIONS.sarif": (
        "sarif",
        "container",
        4,
        {"high": 1, "low": 3},
    ),
    "sarif/grype-0.34.7__dd_cxf-3.4.6.sarif": (
        "sarif",
        "dependency",
        22,
        {"critical": 1, "high": 11, "medium": 4, "low": 6},
    ),
    "sarif/shellcheck-scanlift__dd_bash-report.sarif": ("sarif", "sast", 27, {"low": 27}),
    "sarif/sarif-spec-example__dd_suppression_test.sarif": ("sarif", "sast", 5, {"medium": 5}),
    "sarif/eslint__sarif-tutorials_simple-example.sarif": ("sarif", "sast", 1, {"high": 1}),
    "sarif/semgrep-0.17.0__dd_semgrepowasp-benchmark-sample.sarif": (
        "sarif",
        "sast",
        1768,
        {"medium": 1768},
    ),
    "bandit/dd_many_vulns.json": ("bandit", "sast", 214, {"medium": 155, "low": 59}),
    "bandit/dd_no_vuln.json": ("bandit", "sast", 0, {}),
    "semgrep/dd_many_vulns.json": ("semgrep", "sast", 48, {"high": 13, "medium": 35}),
    "semgrep/dd_fingerprint_test.json": ("semgrep", "sast", 2, {"high": 1, "medium": 1}),
    "semgrep/dd_repeated_findings.json": ("semgrep", "sast", 2, {"medium": 2}),
    "checkov/dd_checkov-report-multiple-check_type.json": ("checkov", "iac", 13, {"medium": 13}),
    "checkov/dd_checkov-report-severity.json": (
        "checkov",
        "iac",
        4,
        {"high": 1, "medium": 2, "low": 1},
    ),
    "checkov/dd_checkov2-report-0-vuln.json": ("checkov", "iac", 0, {}),
    "pip_audit/dd_many_vulns_new.json": ("pip-audit", "dependency", 7, {"medium": 7}),
    "pip_audit/dd_zero_vulns_new.json": ("pip-audit", "dependency", 0, {}),
    "trivy/dd_misconfigurations_and_secrets.json": (
        "trivy",
        "dependency",
        5,
        {"critical": 2, "high": 2, "medium": 1},
    ),
    "trivy/dd_kubernetes.json": ("trivy", "dependency", 20, {"medium": 6, "low": 14}),
    "trivy/trivy-dev__trivy_alpine-310.json.golden.json": ("trivy", "container", 4, {"medium": 4}),
    "npm_audit/dd_npm7plus_many_vulns.json": (
        "npm-audit",
        "dependency",
        6,
        {"medium": 4, "low": 2},
    ),
    "npm_audit/dd_npm6_many_vuln.json": (
        "npm-audit",
        "dependency",
        5,
        {"high": 3, "medium": 1, "low": 1},
    ),
    # The corpus added for issue 19 (CORPUS.md beside the fixtures says where each comes from).
    "sarif/spotbugs-4.4.0__dd_spotbugs.sarif": ("sarif", "sast", 56, {"low": 56}),
    # 9 results at 18 places: one finding per place.
    "sarif/mobsfscan-0.0.8__dd_mobsfscan.sarif.json": (
        "sarif",
        "sast",
        9,
        {"high": 2, "medium": 2, "low": 14},
    ),
    # The same semgrep run as JSON and as SARIF: SARIF has no CRITICAL (semgrep writes `error`).
    "semgrep/semgrep-1.185.0__werkzeug-mako.json": (
        "semgrep",
        "sast",
        19,
        {"critical": 3, "high": 10, "medium": 3, "low": 3},
    ),
    "sarif/semgrep-1.185.0__werkzeug-mako.sarif": (
        "sarif",
        "sast",
        19,
        {"high": 13, "medium": 3, "low": 3},
    ),
    "bandit/bandit-1.9.4__werkzeug-3.1.9.json": (
        "bandit",
        "sast",
        28,
        {"high": 3, "medium": 4, "low": 21},
    ),
    "bandit/bandit-1.9.4__mako-1.4.3.json": ("bandit", "sast", 27, {"medium": 18, "low": 9}),
    # The same checkov run as JSON (severity null: medium) and as SARIF (level error: high).
    "checkov/checkov-3.3.30__dockerfiles-and-workflows.json": (
        "checkov",
        "iac",
        10,
        {"medium": 10},
    ),
    "sarif/checkov-3.3.30__dockerfiles-and-workflows.sarif": ("sarif", "iac", 10, {"high": 10}),
    "pip_audit/dd_zero_vulns.json": ("pip-audit", "dependency", 0, {}),
    "pip_audit/pip-audit-2.10.1__shipboard-venv.json": (
        "pip-audit",
        "dependency",
        2,
        {"medium": 2},
    ),
    "trivy/dd_legacy_trivy_mix.json": ("trivy", "dependency", 7, {"high": 6, "low": 1}),
}


@pytest.mark.parametrize("relative", list(CASES))
def test_fixture_counts_and_severities(relative: str) -> None:
    fmt, scan_type, results, severities = CASES[relative]
    report, weighted = _report(relative)
    assert report.format == fmt
    assert report.scan_type == scan_type
    assert report.results == results
    assert dict(weighted) == severities


def test_intra_report_duplicates_collapse_with_occurrences() -> None:
    checkov, _ = _report("sarif/checkov-3.2.495__chiju_results_sarif.sarif")
    assert len(checkov.findings) == 2
    assert sorted(f.occurrences for f in checkov.findings) == [2, 2]
    repeated, _ = _report("semgrep/dd_repeated_findings.json")
    (finding,) = repeated.findings
    assert finding.occurrences == 2
    assert finding.cwe_id == "CWE-696"
    # ShellCheck: partialFingerprints collide across rules, so the rule id is part of identity.
    doc = json.loads((FIXTURES / "sarif/shellcheck-scanlift__dd_bash-report.sarif").read_text())
    results = doc["runs"][0]["results"]
    by_print = {tuple(sorted(r["partialFingerprints"].items())) for r in results}
    by_rule_and_print = {
        (r["ruleId"], tuple(sorted(r["partialFingerprints"].items()))) for r in results
    }
    assert len(by_print) == 9  # the MANIFEST's count by fingerprint alone
    shellcheck, _ = _report("sarif/shellcheck-scanlift__dd_bash-report.sarif")
    assert len(shellcheck.findings) == len(by_rule_and_print)


def test_mapping_details() -> None:
    codeql, _ = _report("sarif/codeql-2.5.4__dd_codeQL-output.sarif")
    assert any(
        f.location == "good/mod_user.py:33" and f.severity == "high" for f in codeql.findings
    )
    assert all(
        f.cwe_id is None or (f.cwe_id.startswith("CWE-") and not f.cwe_id.startswith("CWE-0"))
        for f in codeql.findings
    )
    suppressed, _ = _report("sarif/sarif-spec-example__dd_suppression_test.sarif")
    assert sorted(f.suppressed for f in suppressed.findings) == [False, False, True, True, True]
    dockle, _ = _report("sarif/dockle-0.3.15__dd_dockle_0_3_15_NOLOCATIONS.sarif")
    assert all(f.location is None for f in dockle.findings)
    pip, _ = _report("pip_audit/dd_many_vulns_new.json")
    first = next(f for f in pip.findings if f.rule_id == "PYSEC-2021-76")
    assert first.title == "PYSEC-2021-76 in aiohttp:3.6.2"
    assert first.location == "aiohttp@3.6.2"
    assert first.remediation == "Upgrade to version: 3.7.4"
    semgrep, _ = _report("semgrep/dd_fingerprint_test.json")
    assert all("requires login" not in f.key for f in semgrep.findings)
    secrets, _ = _report("trivy/dd_misconfigurations_and_secrets.json")
    assert any(
        f.title == "DS002 - Image user should not be 'root'" and f.severity == "high"
        for f in secrets.findings
    )


def test_moved_lines_keep_the_fingerprint_and_a_new_key_does_not() -> None:
    line31, _ = _report("semgrep/dd_close_old_findings_report_line31.json")
    line24, _ = _report("semgrep/dd_close_old_findings_report_second_run_line24.json")
    other, _ = _report("semgrep/dd_close_old_findings_report_third_run_different_unique_id.json")
    assert line31.findings[0].location != line24.findings[0].location
    assert line31.findings[0].fingerprint == line24.findings[0].fingerprint
    assert other.findings[0].fingerprint != line31.findings[0].fingerprint


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"runs": [', "not valid JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (json.dumps({"version": "2.0.0", "$schema": "x", "runs": []}).encode(), "SARIF version"),
        (b'{"hello": "world"}', "unrecognized report"),
        (b"[1, 2, 3]", "unrecognized report"),
    ],
)
def test_bad_input_is_refused_with_what_was_expected(data: bytes, message: str) -> None:
    with pytest.raises(ImportFailed, match=message):
        parse_report(data)
