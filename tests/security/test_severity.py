"""Severity mapping of the security importers, directly: no report file, no database, no HTTP.

Every format's words map onto the four severities of the spec; a word a format does not define is
refused with its JSON path, never guessed."""

from __future__ import annotations

import pytest

from shipboard.security.importers.common import (
    BANDIT_WORDS,
    CHECKOV_WORDS,
    NPM_WORDS,
    SARIF_LEVELS,
    SECURITY_SEVERITY_WORDS,
    SEMGREP_WORDS,
    SEVERITIES,
    TRIVY_WORDS,
    ImportFailed,
    infer_type,
    normalize_cwe,
    severity_from_score,
    severity_from_word,
)

ALL_WORDS = {
    "bandit": BANDIT_WORDS,
    "semgrep": SEMGREP_WORDS,
    "trivy": TRIVY_WORDS,
    "checkov": CHECKOV_WORDS,
    "npm": NPM_WORDS,
    "sarif": SARIF_LEVELS,
    "security-severity": SECURITY_SEVERITY_WORDS,
}


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (0.0, "low"),
        (3.9, "low"),
        (4.0, "medium"),
        (6.9, "medium"),
        (7.0, "high"),
        (8.9, "high"),
        (9.0, "critical"),
        (10.0, "critical"),
    ],
)
def test_score_boundaries_follow_cvss(score: float, severity: str) -> None:
    assert severity_from_score(score) == severity


@pytest.mark.parametrize("table", list(ALL_WORDS))
def test_every_word_of_every_format_is_one_of_the_four_severities(table: str) -> None:
    words = ALL_WORDS[table]
    assert set(words.values()) <= set(SEVERITIES)
    for word, severity in words.items():
        assert severity_from_word(word, words=words, path="$.x") == severity


def test_no_format_has_an_info_severity_of_its_own() -> None:
    # DefectDojo's Info is low here: the spec has four severities.
    assert severity_from_word("INFO", words=SEMGREP_WORDS, path="$") == "low"
    assert severity_from_word("UNKNOWN", words=TRIVY_WORDS, path="$") == "low"
    assert severity_from_word("info", words=NPM_WORDS, path="$") == "low"
    assert severity_from_word("none", words=SARIF_LEVELS, path="$") == "low"


@pytest.mark.parametrize("written", ["moderate", " moderate ", "MODERATE", "Moderate"])
def test_words_match_whatever_their_case_and_padding(written: str) -> None:
    assert severity_from_word(written, words=NPM_WORDS, path="$") == "medium"


def test_an_absent_word_takes_the_default_only_when_there_is_one() -> None:
    assert severity_from_word(None, words=SARIF_LEVELS, path="$", default="medium") == "medium"
    with pytest.raises(ImportFailed, match=r"\$\.level: unknown severity null"):
        severity_from_word(None, words=SARIF_LEVELS, path="$.level")


@pytest.mark.parametrize(
    ("word", "shown"),
    [("SEVERE", "'SEVERE'"), (3, "3"), (True, "true"), ({"a": 1}, "an object"), ([], "a list")],
)
def test_an_unknown_word_is_refused_with_its_path_and_the_known_words(
    word: object, shown: str
) -> None:
    with pytest.raises(ImportFailed) as refused:
        severity_from_word(word, words=BANDIT_WORDS, path="$.results[3].issue_severity")
    message = str(refused.value)
    assert message.startswith(f"$.results[3].issue_severity: unknown severity {shown};")
    assert message.endswith("expected one of UNDEFINED, LOW, MEDIUM, HIGH")


def test_a_refusal_never_quotes_more_than_a_line() -> None:
    with pytest.raises(ImportFailed) as refused:
        severity_from_word("x" * 500, words=BANDIT_WORDS, path="$")
    # repr with its quote, cut to 57 characters and an ellipsis
    assert "'" + "x" * 56 + "...;" in str(refused.value)


@pytest.mark.parametrize(
    ("value", "cwe"),
    [
        ("79", "CWE-79"),
        (79, "CWE-79"),
        ("CWE-79", "CWE-79"),
        ("cwe-079", "CWE-79"),
        ("external/cwe/cwe-079", "CWE-79"),
        ("CWE-79: Improper Neutralization", "CWE-79"),
        ("CWE_22", "CWE-22"),
        (None, None),
        ("not a weakness", None),
        ("", None),
    ],
)
def test_cwe_identifiers_are_normalised(value: object, cwe: str | None) -> None:
    assert normalize_cwe(value) == cwe


@pytest.mark.parametrize(
    ("tool", "hint", "scan_type"),
    [
        ("Bandit", None, "sast"),
        ("semgrep", None, "sast"),
        ("pip-audit", None, "dependency"),
        ("npm audit", None, "dependency"),
        ("Checkov", None, "iac"),
        ("tfsec", None, "iac"),
        ("Dockle", None, "container"),
        ("something new", None, "sast"),
        ("Bandit", "dependency", "dependency"),
        ("Bandit", "nonsense", "sast"),
    ],
)
def test_scan_type_follows_the_tool_unless_the_report_says(
    tool: str, hint: str | None, scan_type: str
) -> None:
    assert infer_type(tool, hint=hint) == scan_type
