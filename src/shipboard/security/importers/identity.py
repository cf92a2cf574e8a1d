"""A finding's identity from what it is, not from where its neighbours are. Pure.

The key is the tool's own stable fingerprint where it gives one (SARIF ``partialFingerprints``,
semgrep's ``fingerprint``), else the flagged lines themselves, normalised, else the message; with
the rule and the path (fingerprint in common.py). Identical keys in one file — four
``import subprocess`` lines — are told apart by their order among the identical ones, so a line
inserted, deleted or edited around a finding leaves every identity as it was."""

from __future__ import annotations

import re
from typing import Any

from shipboard.security.importers.common import ParsedFinding, fingerprint, path_of

_LINE = re.compile(r":(\d+)(?::\d+)?$")
_NUMBERED = re.compile(r"^\s*(\d+)\s?(.*)$")


_COMMENT = ("#", "//", "--", "/*", "*")
# A statement spanning many lines is keyed on its first few: enough to tell it from others, and
# bandit shows only a window of lines from the flagged one.
KEY_LINES = 5


def normalise(lines: list[str]) -> str:
    """Whitespace-insensitive text of the flagged lines, without blank or comment-only lines
    (reindenting, or a comment written inside a multi-line call, is not a change)."""
    kept = [" ".join(line.split()) for line in lines]
    return "\n".join([line for line in kept if line and not line.startswith(_COMMENT)][:KEY_LINES])


def bandit_key(code: Any, line_range: Any, line_number: Any) -> str:
    """The flagged lines of a bandit result, out of its ``code`` (which carries context lines
    around them, numbered): from ``line_number`` to the end of ``line_range``. The start of
    the range is not used: bandit's window of lines begins just above ``line_number``."""
    if not isinstance(code, str):
        return ""
    numbers = [
        n
        for n in (line_range if isinstance(line_range, list) else [])
        if isinstance(n, int) and not isinstance(n, bool)
    ]
    first = line_number if isinstance(line_number, int) and not isinstance(line_number, bool) else 0
    wanted = {n for n in numbers if n >= first} or ({first} if first else set(numbers))
    flagged = []
    for row in code.splitlines():
        match = _NUMBERED.match(row)
        if match and int(match.group(1)) in wanted:
            flagged.append(match.group(2))
    return normalise(flagged)


def _line(location: str | None) -> int:
    match = _LINE.search(location or "")
    return int(match.group(1)) if match else 0


def number(findings: list[ParsedFinding]) -> list[ParsedFinding]:
    """Give each finding whose key repeats in its file (same tool, rule, path and key, at a
    different line) its index among them, top to bottom, in its fingerprint. The first keeps
    the fingerprint it had without an index. Findings at the same line stay equal (they are
    duplicates, collapsed later)."""
    groups: dict[tuple[str, str, str, str], list[ParsedFinding]] = {}
    for finding in findings:
        path = path_of(finding.location)
        groups.setdefault((finding.tool, finding.rule_id, path, finding.key), []).append(finding)
    for (tool, rule_id, path, key), members in groups.items():
        lines = sorted({_line(f.location) for f in members})
        if len(lines) < 2:
            continue
        index = {line: i for i, line in enumerate(lines)}
        for finding in members:
            i = index[_line(finding.location)]
            if i:
                finding.fingerprint = fingerprint(tool, rule_id, path, f"{key}\x1e{i}")
    return findings
