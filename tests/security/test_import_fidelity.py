"""Scan imports as faithful as the report (issue 19): SARIF message templates, every location,
every severity word, every pip-audit shape, vendor statuses, readable titles and refusals, the
old trivy list — and never a 500 whatever type a field holds."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shipboard.security import scanners
from shipboard.security.importers import ImportFailed, ParsedReport, parse_report, sarif
from tests.support.live import Clients
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.problems import assert_problem

FIXTURES = FIXTURES_ROOT / "security"


def _parse(relative: str) -> ParsedReport:
    return parse_report((FIXTURES / relative).read_bytes())


def _doc(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_bytes())


def _refusal(doc: Any) -> str:
    with pytest.raises(ImportFailed) as caught:
        parse_report(json.dumps(doc).encode())
    return str(caught.value)


def _post(client: httpx.Client, content: bytes, environment: str = "staging") -> httpx.Response:
    return client.post(
        "/api/v1/security/scans/import",
        files={"file": ("report.json", content, "application/json")},
        data={"environment": environment},
    )


def _current(client: httpx.Client, environment: str = "staging") -> list[dict[str, Any]]:
    response = client.get("/api/v1/security/findings", params={"environment": environment})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# --- 1. SARIF message templates -------------------------------------------------------------


def test_spotbugs_templates_fill_every_message_and_keep_every_result() -> None:
    report = _parse("sarif/spotbugs-4.4.0__dd_spotbugs.sarif")
    # DefectDojo's test asserts 56; with empty messages they merged into 13.
    assert len(report.findings) == 56
    first = report.findings[0]
    assert (first.rule_id, first.location, first.severity) == (
        "DMI_HARDCODED_ABSOLUTE_FILENAME",
        "Boot.java:23",
        "low",
    )
    assert (
        first.description == "Hard coded reference to an absolute pathname in Boot.main(String[])."
    )
    encoding = [f.description for f in report.findings if f.rule_id == "DM_DEFAULT_ENCODING"]
    assert "Found reliance on default encoding in Boot.writeFrags(Log, String): " in encoding[0]
    assert encoding[0].endswith("new java.io.FileWriter(File).")
    naming = next(f for f in report.findings if f.rule_id == "NM_METHOD_NAMING_CONVENTION")
    assert naming.description.startswith("The method name XonoticParser$")
    assert "doesn't start with a lower case letter." in naming.description
    assert all("{" not in f.description for f in report.findings)


def test_placeholders_braces_and_missing_arguments_follow_the_spec() -> None:
    assert sarif.fill("{0} calls {1}.", ["a()", "b()"]) == "a() calls b()."
    assert sarif.fill("{{literal}} and {0}", ["x"]) == "{literal} and x"
    assert sarif.fill("{0} and {2}", ["x"]) == "x and {2}"  # no argument 2: left as it is
    assert sarif.fill("{1}{0}", ["a", "b"]) == "ba"
    assert sarif.fill("}}{{0}}", ["x"]) == "}{0}"


def _sarif(results: list[dict[str, Any]], **tool: Any) -> dict[str, Any]:
    driver = {"name": "Templated", "rules": tool.pop("rules", [])} | tool.pop("driver", {})
    return {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{"tool": {"driver": driver, **tool}, "results": results}],
    }


def test_templates_come_from_rule_global_and_extension_strings_and_markdown() -> None:
    doc = _sarif(
        [
            {"ruleId": "R1", "message": {"id": "only-md", "arguments": ["x"]}},
            {"ruleId": "R1", "message": {"id": "global", "arguments": ["y"]}},
            {
                "ruleId": "EXT1",
                "rule": {"id": "EXT1", "index": 0, "toolComponent": {"index": 0}},
                "message": {"id": "default", "arguments": ["z", "w"]},
            },
            {"ruleId": "R1", "message": {"id": "nowhere", "arguments": ["v"]}},
        ],
        rules=[{"id": "R1", "messageStrings": {"only-md": {"markdown": "**{0}** is bad"}}}],
        driver={"globalMessageStrings": {"global": {"text": "global {0}"}}},
        extensions=[
            {
                "name": "plugin",
                "rules": [
                    {"id": "EXT1", "messageStrings": {"default": {"text": "{1} before {0}"}}}
                ],
            }
        ],
    )
    messages = [f.description for f in parse_report(json.dumps(doc).encode()).findings]
    assert messages == ["**x** is bad", "global y", "w before z", "[nowhere] v"]


# --- 2. every location ------------------------------------------------------------------------


def test_every_location_of_a_result_is_its_own_finding() -> None:
    report = _parse("sarif/mobsfscan-0.0.8__dd_mobsfscan.sarif.json")
    logging = [f for f in report.findings if f.rule_id == "android_logging"]
    assert len(logging) == 8  # 8 places in 5 files
    assert len({f.location for f in logging}) == 8
    assert len({f.location.rsplit(":", 1)[0] for f in logging if f.location}) == 5
    assert sum(f.occurrences for f in report.findings) == 18
    assert len(report.findings) == 18


def test_places_without_snippets_in_one_file_stay_apart() -> None:
    locations = [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": f"src/{name}"},
                "region": {"startLine": number},
            }
        }
        for name, number in (("a.c", 1), ("a.c", 9), ("b.c", 4))
    ]
    doc = _sarif([{"ruleId": "R", "message": {"text": "bad"}, "locations": locations}])
    report = parse_report(json.dumps(doc).encode())
    assert sorted(f.location or "" for f in report.findings) == [
        "src/a.c:1",
        "src/a.c:9",
        "src/b.c:4",
    ]
    assert len({f.fingerprint for f in report.findings}) == 3


# --- 3. severity words ------------------------------------------------------------------------


def test_semgrep_new_severity_words_are_mapped() -> None:
    report = _parse("semgrep/semgrep-1.185.0__werkzeug-mako.json")
    by_rule = {f.rule_id: f.severity for f in report.findings}
    assert by_rule["python-exec"] == "critical"  # the rule says CRITICAL
    assert by_rule["subprocess-call"] == "high"  # HIGH
    assert by_rule["md5-or-sha1"] == "medium"  # MEDIUM
    assert by_rule["assert-used"] == "low"  # LOW
    assert by_rule["python-eval"] == "high"  # ERROR
    assert by_rule["random-module"] == "low"  # INFO


UNKNOWN_WORDS = [
    ("bandit/dd_many_vulns.json", ("results", 0, "issue_severity"), "$.results[0].issue_severity"),
    (
        "semgrep/dd_many_vulns.json",
        ("results", 1, "extra", "severity"),
        "$.results[1].extra.severity",
    ),
    (
        "checkov/dd_checkov-report-severity.json",
        ("results", "failed_checks", 0, "severity"),
        "$.results.failed_checks[0].severity",
    ),
    (
        "trivy/dd_kubernetes.json",
        ("Vulnerabilities", 0, "Results", 0, "Vulnerabilities", 0, "Severity"),
        "$.Vulnerabilities[0].Results[0].Vulnerabilities[0].Severity",
    ),
    (
        "npm_audit/dd_npm7plus_many_vulns.json",
        ("vulnerabilities", "@vercel/fun", "severity"),
        "$.vulnerabilities.@vercel/fun.severity",
    ),
    (
        "sarif/eslint__sarif-tutorials_simple-example.sarif",
        ("runs", 0, "results", 0, "level"),
        "$.runs[0].results[0].level",
    ),
    (
        "sarif/grype-0.34.7__dd_cxf-3.4.6.sarif",
        ("runs", 0, "tool", "driver", "rules", 0, "properties", "security-severity"),
        "$.runs[0].tool.driver.rules[0].properties.security-severity",
    ),
]


@pytest.mark.parametrize(("relative", "where", "path"), UNKNOWN_WORDS, ids=lambda v: str(v)[:30])
def test_an_unknown_severity_word_is_refused_naming_it(
    relative: str, where: tuple[Any, ...], path: str
) -> None:
    doc = _doc(relative)
    node = doc
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = "SEVERE-ISH"
    reason = _refusal(doc)
    assert "'SEVERE-ISH'" in reason
    assert path in reason


# --- 4. pip-audit shapes -----------------------------------------------------------------------


def test_pip_audit_list_with_skipped_entries_imports() -> None:
    report = _parse("pip_audit/dd_zero_vulns.json")
    assert (report.format, report.findings) == ("pip-audit", [])


def test_pip_audit_real_run_with_a_skipped_editable_and_no_fixes() -> None:
    report = _parse("pip_audit/pip-audit-2.10.1__shipboard-venv.json")
    assert sorted(f.title for f in report.findings) == [
        "PYSEC-2022-43012 in setuptools:65.5.0",
        "PYSEC-2025-49 in setuptools:65.5.0",
    ]
    doc = _doc("pip_audit/pip-audit-2.10.1__shipboard-venv.json")
    for dependency in doc["dependencies"]:
        for vuln in dependency.get("vulns", []):
            vuln["fix_versions"] = []
    assert all(f.remediation is None for f in parse_report(json.dumps(doc).encode()).findings)
    assert len(parse_report(json.dumps(doc["dependencies"]).encode()).findings) == 2


# --- 5. vendor statuses --------------------------------------------------------------------------

STATUSES = ["not_affected", "will_not_fix", "fixed", "affected"]


def _trivy_with_statuses() -> bytes:
    doc = _doc("trivy/trivy-dev__trivy_alpine-310.json.golden.json")
    for vuln, status in zip(doc["Results"][0]["Vulnerabilities"], STATUSES, strict=True):
        vuln["Status"] = status
    return json.dumps(doc).encode()


def test_trivy_statuses_become_triage_and_remediation() -> None:
    report = parse_report(_trivy_with_statuses())
    triaged = [f for f in report.findings if f.triage]
    assert len(triaged) == 1
    assert triaged[0].triage == (
        "false_positive",
        "trivy: not_affected (this package is not affected by this vulnerability on this platform)",
    )
    wont = next(f for f in report.findings if "will_not_fix" in (f.remediation or ""))
    assert wont.triage is None
    doc = json.loads(_trivy_with_statuses())
    doc["Results"][0]["Vulnerabilities"][0]["Status"] = "maybe"
    assert "$.Results[0].Vulnerabilities[0].Status: unknown status 'maybe'" in _refusal(doc)


def test_not_affected_is_triaged_out_of_the_score_and_lifted_when_the_vendor_changes(
    clients: Clients,
) -> None:
    with clients.as_role("deployer") as client:
        first = _post(client, _trivy_with_statuses())
        assert first.status_code == 201, first.text
        findings = _current(client)
        not_affected = [f for f in findings if f["status"] == "triaged"]
        assert len(not_affected) == 1
        assert not_affected[0]["triage_status"] == "false_positive"
        assert "not_affected" in not_affected[0]["triage_reason"]
        # Four mediums, one not affected: 3 × 3 against the score.
        assert first.json()["scan"]["summary"]["compliance_score"] == 100 - 3 * 3
        # A person's triage of another finding survives the report; the report's own does not.
        other = next(f for f in findings if f["status"] == "open")
        assert (
            client.patch(
                f"/api/v1/security/findings/{other['id']}",
                json={"status": "accepted_risk", "reason": "base image pinned until Q3"},
            ).status_code
            == 204
        )
        plain = (FIXTURES / "trivy/trivy-dev__trivy_alpine-310.json.golden.json").read_bytes()
        again = _post(client, plain)
        assert again.status_code == 201, again.text
        after = {f["fingerprint"]: f for f in _current(client)}
    assert after[not_affected[0]["fingerprint"]]["status"] == "open"
    assert after[other["fingerprint"]]["triage_reason"] == "base image pinned until Q3"
    assert again.json()["scan"]["summary"]["compliance_score"] == 100 - 3 * 3


def test_sarif_suppression_statuses_and_absent_baseline_state() -> None:
    doc = _doc("sarif/sarif-spec-example__dd_suppression_test.sarif")
    results = doc["runs"][0]["results"]
    suppressed = [r for r in results if r.get("suppressions")]
    suppressed[0]["suppressions"][0]["status"] = "underReview"
    suppressed[1]["suppressions"][0]["status"] = "rejected"
    report = parse_report(json.dumps(doc).encode())
    assert sum(f.triage is not None for f in report.findings) == 1
    (kept,) = [f for f in report.findings if f.triage]
    assert kept.triage is not None
    assert kept.triage[1].startswith("SARIF: suppressed")
    results[0]["baselineState"] = "absent"
    results[1]["baselineState"] = "unchanged"
    report = parse_report(json.dumps(doc).encode())
    assert (report.results, len(report.findings)) == (5, 4)


# --- 11 and 12: titles, refusals people can read, the old trivy list ------------------------------


def test_results_without_a_rule_are_titled_by_their_first_sentence() -> None:
    doc = _sarif(
        [
            {
                "message": {"text": "Password stored in plain text. Use the vault instead."},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}}}],
            }
        ]
    )
    (finding,) = parse_report(json.dumps(doc).encode()).findings
    assert finding.title == "Password stored in plain text."


@pytest.mark.parametrize(
    ("relative", "where", "value", "message"),
    [
        (
            "bandit/dd_many_vulns.json",
            ("results", 3),
            "not an object",
            "$.results[3]: expected an object, found 'not an object'",
        ),
        (
            "semgrep/dd_many_vulns.json",
            ("results", 0, "extra"),
            ["x"],
            "$.results[0].extra: expected an object, found a list",
        ),
        (
            "sarif/codeql-2.5.4__dd_codeQL-output.sarif",
            ("runs", 0, "results", 2, "locations"),
            {"uri": "x"},
            "$.runs[0].results[2].locations: expected a list, found an object",
        ),
        (
            "checkov/dd_checkov-report-severity.json",
            ("results", "failed_checks", 1, "file_line_range"),
            "12-14",
            "$.results.failed_checks[1].file_line_range: expected a list, found '12-14'",
        ),
        (
            "pip_audit/dd_many_vulns_new.json",
            ("dependencies", 1, "vulns", 0, "id"),
            {"id": "x"},
            "$.dependencies[1].vulns[0].id: expected text, found an object",
        ),
    ],
    ids=["bandit", "semgrep", "sarif", "checkov", "pip-audit"],
)
def test_malformed_reports_name_the_json_path_and_what_was_expected(
    relative: str, where: tuple[Any, ...], value: Any, message: str
) -> None:
    doc = _doc(relative)
    node = doc
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    reason = _refusal(doc)
    assert message in reason
    assert not re.search(r"Error\b|object has no attribute|NoneType|Traceback", reason)


def test_old_formats_say_what_is_supported_or_what_the_tool_reported() -> None:
    reason = _refusal(_doc("npm_audit/dd_empty_with_error.json"))
    assert "npm audit reported ENOAUDIT instead of a report" in reason
    assert "may not support audit requests" in reason
    reason = _refusal({"SchemaVersion": 3, "Results": []})
    assert "trivy schema version 3 is not supported; expected 2" in reason
    reason = _refusal({"auditReportVersion": 1, "vulnerabilities": {}})
    assert "npm audit report version 1 is not supported" in reason


def test_trivy_before_schema_2_imports() -> None:
    report = _parse("trivy/dd_legacy_trivy_mix.json")
    assert report.format == "trivy"
    assert len(report.findings) == 7
    assert Counter(f.severity for f in report.findings) == {"high": 6, "low": 1}
    lodash = next(f for f in report.findings if f.rule_id == "CVE-2018-16487")
    assert lodash.location == "node-app/package-lock.json lodash@4.17.4"
    assert lodash.cwe_id == "CWE-190"


# --- 9. never a 500: every field of every real report, type-mutated ------------------------------

MUTANTS: list[Any] = [None, 7, -1, 2.5, True, "", "\x00x", [], {}, [{}], {"k": [1]}]
CORPUS = sorted(
    p for p in FIXTURES.rglob("*") if p.suffix in {".json", ".sarif"} and p.stat().st_size < 400_000
)


def _shapes(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The first concrete path of each field (list positions folded together)."""
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def walk(value: Any, concrete: tuple[Any, ...], shape: tuple[Any, ...]) -> None:
        found.setdefault(shape, concrete)
        if isinstance(value, dict):
            for name, child in value.items():
                # Names that are data (npm package names, messageStrings ids) fold too.
                walk(child, (*concrete, name), (*shape, "*" if len(value) > 12 else name))
        elif isinstance(value, list):
            for index, child in enumerate(value[:3]):
                walk(child, (*concrete, index), (*shape, "[]"))

    walk(node, path, path)
    return found


def _mutations(relative: Path) -> list[tuple[tuple[Any, ...], Any]]:
    doc = json.loads(relative.read_bytes())
    return [(path, mutant) for path in _shapes(doc).values() if path for mutant in MUTANTS]


def _mutated(doc: Any, path: tuple[Any, ...], mutant: Any) -> bytes:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = copy.deepcopy(mutant)
    return json.dumps(doc).encode()


def _check(report: ParsedReport) -> None:
    for f in report.findings:
        for value in (f.tool, f.rule_id, f.title, f.description, f.key):
            assert isinstance(value, str)
            assert "\x00" not in value
        for optional in (f.location, f.remediation, f.cwe_id):
            assert optional is None or (isinstance(optional, str) and "\x00" not in optional)
        assert 0 < len(f.title) <= 1024


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name[:40])
def test_every_field_of_every_report_type_mutated_is_read_or_refused_by_name(path: Path) -> None:
    original = json.loads(path.read_bytes())
    for where, mutant in _mutations(path):
        raw = _mutated(copy.deepcopy(original), where, mutant)
        try:
            report = parse_report(raw)
        except ImportFailed as exc:
            reason = str(exc)
            assert not re.search(
                r"unexpected shape|object has no attribute|NoneType|Traceback", reason
            ), (where, mutant, reason)
            continue
        _check(report)


API_SAMPLE = [
    ("semgrep/dd_many_vulns.json", ("results", 0, "extra", "fix"), {"fix": "object"}),
    ("bandit/dd_many_vulns.json", ("results", 0, "more_info"), ["https://a", "https://b"]),
    ("checkov/dd_checkov-report-severity.json", ("results", "failed_checks", 0, "guideline"), {}),
    (
        "trivy/dd_misconfigurations_and_secrets.json",
        ("Results", 1, "Misconfigurations", 0, "Resolution"),
        ["Add USER", "Rebuild"],
    ),
    ("semgrep/dd_many_vulns.json", ("results", 2, "extra", "message"), "nul \x00 inside"),
    ("bandit/dd_many_vulns.json", ("results", 1, "line_number"), "12"),
    ("pip_audit/dd_many_vulns_new.json", ("dependencies", 0, "name"), ["aiohttp"]),
]


def test_wrong_types_in_real_reports_never_answer_500(clients: Clients) -> None:
    with clients.as_role("service") as client:
        for relative, where, mutant in API_SAMPLE:
            response = _post(client, _mutated(_doc(relative), where, mutant))
            assert response.status_code in (201, 422), (relative, where, response.text)
            if response.status_code == 422:
                body = assert_problem(response, 422)
                assert "$." in str(body["detail"])


# --- the real scanners on real code -------------------------------------------------------------

SEMGREP_RULES = FIXTURES / "semgrep" / "semgrep-1.185.0__rules.yml"
DECLARED = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}


@pytest.fixture
def jinja2_source(tmp_path: Path) -> Path:
    """A copy of the installed jinja2 (a dependency of Shipboard): real open-source code."""
    import jinja2

    target = tmp_path / "jinja2"
    shutil.copytree(Path(jinja2.__file__).parent, target, ignore=shutil.ignore_patterns("*.pyc"))
    return target


def test_bandit_on_real_code_imports_with_its_own_totals(jinja2_source: Path) -> None:
    run = scanners.command("sast", "bandit", jinja2_source, {})
    raw = scanners.run(run, cwd=str(jinja2_source.parent))
    totals = json.loads(raw)["metrics"]["_totals"]
    report = parse_report(raw)
    weighted: Counter[str] = Counter()
    for finding in report.findings:
        weighted[finding.severity] += finding.occurrences
    assert report.results == sum(
        int(totals[f"SEVERITY.{s}"]) for s in ("HIGH", "MEDIUM", "LOW", "UNDEFINED")
    )
    assert report.results > 0
    assert weighted == Counter(
        {
            s.lower(): int(totals[f"SEVERITY.{s}"])
            for s in ("HIGH", "MEDIUM", "LOW")
            if int(totals[f"SEVERITY.{s}"])
        }
    )


def test_semgrep_on_real_code_maps_every_rule_severity(jinja2_source: Path) -> None:
    rules = {
        rule["id"]: rule["severity"] for rule in yaml.safe_load(SEMGREP_RULES.read_text())["rules"]
    }
    config = {"security": {"semgrep_rules": str(SEMGREP_RULES)}}
    run = scanners.command("sast", "semgrep", jinja2_source, config)
    raw = scanners.run(run, cwd=str(jinja2_source.parent))
    results = json.loads(raw)["results"]
    report = parse_report(raw)
    assert report.results == len(results) > 0
    mapping = {**DECLARED, "CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
    for finding in report.findings:
        # semgrep prefixes a rule's id with the dotted directory of the rules file.
        rule = finding.rule_id.rsplit(".", 1)[-1]
        assert finding.severity == mapping[rules[rule]], finding.rule_id
    assert {f.severity for f in report.findings} >= {"critical", "medium", "low"}
