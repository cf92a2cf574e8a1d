"""What every importer produces, and the mapping rules they share. Pure."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")

# The tool decides the scan type when the caller does not (DESIGN.md §5, issue text).
SAST_TOOLS = ("bandit", "semgrep", "codeql", "eslint", "shellcheck", "shell script analysis")
DEPENDENCY_TOOLS = ("pip-audit", "npm audit", "grype")
IAC_TOOLS = ("checkov", "tfsec", "kics")
CONTAINER_TOOLS = ("dockle",)


class ImportFailed(ValueError):
    """The file is not a report Shipboard can read; the message says what was expected."""


@dataclass
class ParsedFinding:
    tool: str
    rule_id: str
    title: str
    description: str
    severity: str
    location: str | None
    cwe_id: str | None
    remediation: str | None
    key: str  # the line-independent identity key (fingerprints, snippet, package+advisory)
    suppressed: bool = False
    occurrences: int = 1
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.fingerprint:
            self.fingerprint = fingerprint(
                self.tool, self.rule_id, path_of(self.location), self.key
            )


@dataclass(frozen=True)
class Outcome:
    """Whether the scanner ran, and what it read (importers/outcome.py)."""

    # The scanner failed: with no findings the scan is stored as failed and resolves nothing.
    failure: str | None = None
    # Files the run covered (None: the whole target). Only their findings may be resolved.
    covered: frozenset[str] | None = None
    # Files the run could not read (syntax errors, timeouts): their findings are never resolved.
    excluded: frozenset[str] = frozenset()

    def may_resolve(self, path: str) -> bool:
        if self.failure is not None or path in self.excluded:
            return False
        return self.covered is None or path in self.covered


@dataclass
class ParsedReport:
    format: str
    tool: str
    scan_type: str
    findings: list[ParsedFinding]
    results: int  # results in the file before duplicates collapsed
    outcome: Outcome = field(default_factory=Outcome)


def path_of(location: str | None) -> str:
    """The file or package part of a location (``path:line`` → ``path``), so lines may move."""
    if not location:
        return ""
    return re.sub(r":\d+(:\d+)?$", "", location)


def fingerprint(tool: str, rule_id: str, path: str, key: str) -> str:
    raw = "\x1f".join((tool.lower(), rule_id, path, key))
    return hashlib.sha256(raw.encode()).hexdigest()


def normalize_cwe(value: Any) -> str | None:
    """``79``, ``CWE-79``, ``cwe-079``, ``external/cwe/cwe-079``, ``CWE-79: XSS`` → ``CWE-79``."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        return f"CWE-{int(text)}"
    match = re.search(r"cwe[-_/ ]?0*(\d+)", text, re.IGNORECASE)
    return f"CWE-{int(match.group(1))}" if match else None


def severity_from_score(score: float) -> str:
    """CVSS-like score → severity (≥9 critical, ≥7 high, ≥4 medium, otherwise low)."""
    if score >= 9:
        return "critical"
    if score >= 7:
        return "high"
    if score >= 4:
        return "medium"
    return "low"


def severity_from_word(word: Any, default: str = "medium") -> str:
    text = str(word or "").strip().lower()
    aliases = {
        "critical": "critical",
        "high": "high",
        "error": "high",
        "medium": "medium",
        "moderate": "medium",
        "warning": "medium",
        "low": "low",
        "info": "low",
        "informational": "low",
        "note": "low",
        "none": "low",
        "unknown": "low",
    }
    return aliases.get(text, default)


def collapse(findings: list[ParsedFinding]) -> list[ParsedFinding]:
    """Identical fingerprints within one report become one finding with an occurrence count."""
    seen: dict[str, ParsedFinding] = {}
    for finding in findings:
        if finding.fingerprint in seen:
            seen[finding.fingerprint].occurrences += 1
        else:
            seen[finding.fingerprint] = finding
    return list(seen.values())


def infer_type(tool: str, *, hint: str | None = None) -> str:
    name = tool.lower()
    if hint in ("dependency", "sast", "container", "iac"):
        return hint
    if any(t in name for t in IAC_TOOLS):
        return "iac"
    if any(t in name for t in DEPENDENCY_TOOLS):
        return "dependency"
    if any(t in name for t in CONTAINER_TOOLS):
        return "container"
    return "sast"


def snippet_key(text: str | None) -> str:
    """A snippet without line numbers and indentation, so moved code keeps its key."""
    if not text:
        return ""
    lines = [re.sub(r"^\s*\d+\s", "", line).strip() for line in str(text).splitlines()]
    return "\n".join(line for line in lines if line)
