"""What every importer produces, and the mapping rules they share. Pure."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from shipboard.core.nulguard import scrub

SEVERITIES = ("low", "medium", "high", "critical")

# The tool decides the scan type when the caller does not (DESIGN.md §5, issue text).
SAST_TOOLS = ("bandit", "semgrep", "codeql", "eslint", "shellcheck", "shell script analysis")
DEPENDENCY_TOOLS = ("pip-audit", "npm audit", "grype")
IAC_TOOLS = ("checkov", "tfsec", "kics")
CONTAINER_TOOLS = ("dockle",)


class ImportFailed(ValueError):
    """The file is not a report Shipboard can read; the message says what was expected."""


# The reason a report gives for a triage it carries (a vendor status, a SARIF suppression): it
# is not a user's name (names allow no space), so a later report may lift it, never a person's.
REPORT_TRIAGER = "scan report"
TRIAGE_STATUSES = ("fixed", "false_positive", "accepted_risk")
TITLE_MAX = 1024


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
    # A triage the report itself carries: (status, the tool's own words). Lifted again by a
    # later report that no longer says it; a person's triage always wins over it.
    triage: tuple[str, str] | None = None
    occurrences: int = 1
    fingerprint: str = field(default="")
    # The key an earlier scheme gave this finding, where it differs (bandit's context snippet):
    # an identity stored under it is adopted instead of resolved (imports._apply_lifecycle).
    legacy_key: str | None = None
    legacy_fingerprint: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # A report is a file from a scanner, not typed input: NUL (which PostgreSQL cannot
        # store) is replaced, not refused.
        for name in ("tool", "rule_id", "title", "description", "location", "cwe_id"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, scrub(value))
        if isinstance(self.remediation, str):
            self.remediation = scrub(self.remediation)
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")
        if self.triage is not None and self.triage[0] not in TRIAGE_STATUSES:
            raise ValueError(f"triage {self.triage[0]!r} is not one of {TRIAGE_STATUSES}")
        # What a report holds goes into text columns: PostgreSQL refuses NUL in text, and a
        # title is at most TITLE_MAX characters (the spec's finding schema).
        self.tool, self.rule_id = _clean(self.tool), _clean(self.rule_id)
        self.title = _clean(self.title)[:TITLE_MAX] or self.rule_id[:TITLE_MAX] or "untitled"
        self.description, self.key = _clean(self.description), _clean(self.key)
        self.location = _clean(self.location) if self.location is not None else None
        self.remediation = _clean(self.remediation) or None
        if not self.fingerprint:
            self.fingerprint = fingerprint(
                self.tool, self.rule_id, path_of(self.location), self.key
            )
        if self.legacy_key is not None and self.legacy_key != self.key:
            self.legacy_fingerprint = fingerprint(
                self.tool, self.rule_id, path_of(self.location), self.legacy_key
            )

    @property
    def suppressed(self) -> bool:
        return self.triage is not None


def _clean(value: str | None) -> str:
    return (value or "").replace("\x00", "\ufffd")


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
    # What was scanned, as the report names it (trivy's ArtifactName), or "".
    target: str = ""


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


# Every severity word each format documents, and what it is in the spec's four severities (which
# have no "info": DefectDojo's Info is low here). A word outside its format's list is refused.
BANDIT_WORDS = {"UNDEFINED": "low", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
SEMGREP_WORDS = {
    # semgrep's rule severities: the classic three, the newer four (1.70+ writes these when the
    # rule says them), and the two internal ones its registry uses.
    "INFO": "low",
    "WARNING": "medium",
    "ERROR": "high",
    "LOW": "low",
    "MEDIUM": "medium",
    "HIGH": "high",
    "CRITICAL": "critical",
    "INVENTORY": "low",
    "EXPERIMENT": "low",
}
TRIVY_WORDS = {
    "UNKNOWN": "low",  # no source rated it; DefectDojo's Info
    "LOW": "low",
    "MEDIUM": "medium",
    "HIGH": "high",
    "CRITICAL": "critical",
}
CHECKOV_WORDS = {
    "INFO": "low",
    "LOW": "low",
    "MEDIUM": "medium",
    "HIGH": "high",
    "CRITICAL": "critical",
}
NPM_WORDS = {
    "info": "low",
    "low": "low",
    "moderate": "medium",
    "high": "high",
    "critical": "critical",
}
SARIF_LEVELS = {"none": "low", "note": "low", "warning": "medium", "error": "high"}
# A non-numeric security-severity (semgrep writes words there): the words GitHub and DefectDojo
# know.
SECURITY_SEVERITY_WORDS = {
    "none": "low",
    "info": "low",
    "informational": "low",
    "low": "low",
    "medium": "medium",
    "moderate": "medium",
    "high": "high",
    "critical": "critical",
}


def severity_from_word(
    word: Any, *, words: dict[str, str], path: str, default: str | None = None
) -> str:
    """The severity a format's word means; ``default`` when the field is absent or null, and
    ImportFailed naming the word and where it is when the format does not define it."""
    if word is None and default is not None:
        return default
    if isinstance(word, str):
        for candidate in (word, word.strip(), word.strip().upper(), word.strip().lower()):
            if candidate in words:
                return words[candidate]
    known = ", ".join(dict.fromkeys(words))
    raise ImportFailed(f"{path}: unknown severity {describe(word)}; expected one of {known}")


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


# --- reading a report's JSON: every value is checked where it is read, and a wrong one is named
# by its JSON path and what was expected (never a Python exception's text).


def describe(value: Any) -> str:
    """A value as a refusal names it: short, and never more than a line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expected(path: str, what: str, value: Any) -> ImportFailed:
    return ImportFailed(f"{path}: expected {what}, found {describe(value)}")


# The accessors take the path of the value's parent and the rest apart (``at``, ``".name"``):
# a path is put together only for a refusal, not for each of 20,000 results read.


def obj(value: Any, at: str, suffix: str = "") -> dict[str, Any]:
    """An optional object: null or absent reads as empty."""
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    raise expected(at + suffix, "an object", value)


def arr(value: Any, at: str, suffix: str = "") -> list[Any]:
    """An optional list: null or absent reads as empty."""
    if isinstance(value, list):
        return value
    if value is None:
        return []
    raise expected(at + suffix, "a list", value)


def objects(value: Any, at: str, suffix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """An optional list of objects, each with its own path."""
    path = at + suffix
    out = []
    for i, item in enumerate(arr(value, path)):
        where = f"{path}[{i}]"
        out.append((where, obj(item, where)))
    return out


def key(value: Any, at: str, suffix: str = "") -> str | None:
    """An identifying scalar (a rule id, a path, a package name, a version): text or a number.
    An object or a list here cannot be an identity, so it is refused rather than guessed at."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise expected(at + suffix, "text", value)
    return str(value)


def text(value: Any) -> str | None:
    """Descriptive text (a message, a fix, a link, a guideline): tools and their versions differ
    in what they put there, so anything is read as text rather than refused — a list line by
    line, an object as its JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return describe(value)
    if isinstance(value, list):
        return "\n".join(t for t in (text(item) for item in value) if t)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def line(value: Any, at: str, suffix: str = "") -> int | None:
    """A line number: a positive integer (0, which checkov writes for whole-file checks, and
    null mean none)."""
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise expected(at + suffix, "a line number", value)
    return value


def first_sentence(message: str, limit: int = 200) -> str:
    """A title for a result that has no rule: its message up to the first sentence's end."""
    flat = " ".join(message.split())
    match = re.search(r"(?<=[.!?])\s", flat)
    sentence = flat[: match.start()] if match else flat
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."
