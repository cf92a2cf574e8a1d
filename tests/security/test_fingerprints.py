"""A finding's identity, directly: fingerprints, keys from the flagged lines, numbering of
identical keys in one file, and duplicates collapsing. No report file, no database, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from shipboard.security.importers import identity
from shipboard.security.importers.common import (
    TITLE_MAX,
    ParsedFinding,
    collapse,
    fingerprint,
    path_of,
    snippet_key,
)


def finding(
    location: str | None = "app/db.py:10", key: str = "cursor.execute(q)", **fields: Any
) -> ParsedFinding:
    values: dict[str, Any] = {
        "tool": "bandit",
        "rule_id": "B608",
        "title": "SQL built from strings",
        "description": "",
        "severity": "medium",
        "location": location,
        "cwe_id": "CWE-89",
        "remediation": None,
        "key": key,
        **fields,
    }
    return ParsedFinding(**values)


# --- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_ignores_the_tools_case() -> None:
    a = fingerprint("Bandit", "B608", "app/db.py", "k")
    assert a == fingerprint("bandit", "B608", "app/db.py", "k")
    assert len(a) == 64
    assert int(a, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        ("semgrep", "B608", "app/db.py", "k"),
        ("bandit", "B609", "app/db.py", "k"),
        ("bandit", "B608", "app/other.py", "k"),
        ("bandit", "B608", "app/db.py", "k2"),
        ("bandit", "b608", "app/db.py", "k"),  # rule ids are case-sensitive
    ],
)
def test_every_part_of_the_identity_counts(other: tuple[str, str, str, str]) -> None:
    assert fingerprint(*other) != fingerprint("bandit", "B608", "app/db.py", "k")


def test_parts_cannot_run_into_each_other() -> None:
    assert fingerprint("t", "ab", "c", "k") != fingerprint("t", "a", "bc", "k")


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("app/db.py:10", "app/db.py"),
        ("app/db.py:10:5", "app/db.py"),
        ("app/db.py", "app/db.py"),
        ("aiohttp@3.6.2", "aiohttp@3.6.2"),
        ("C:/src/x.py:3", "C:/src/x.py"),
        (None, ""),
        ("", ""),
    ],
)
def test_the_path_is_the_location_without_its_line_and_column(
    location: str | None, path: str
) -> None:
    assert path_of(location) == path


# --- a parsed finding ----------------------------------------------------------------------------


def test_a_finding_that_moves_lines_keeps_its_fingerprint() -> None:
    assert finding("app/db.py:10").fingerprint == finding("app/db.py:42:7").fingerprint
    assert finding("app/db.py:10").fingerprint == fingerprint(
        "bandit", "B608", "app/db.py", "cursor.execute(q)"
    )
    assert finding("app/db.py:10").fingerprint != finding("app/other.py:10").fingerprint
    assert finding(key="a").fingerprint != finding(key="b").fingerprint


def test_a_fingerprint_the_tool_gave_is_kept() -> None:
    assert finding(fingerprint="given").fingerprint == "given"


def test_a_legacy_key_gives_a_second_fingerprint_only_when_it_differs() -> None:
    moved = finding(key="new", legacy_key="old")
    assert moved.legacy_fingerprint == fingerprint("bandit", "B608", "app/db.py", "old")
    assert finding(key="same", legacy_key="same").legacy_fingerprint is None
    assert finding().legacy_fingerprint is None


def test_nul_is_replaced_not_refused_and_the_title_is_bounded() -> None:
    parsed = finding(title="bad\x00title" + "t" * 2000, key="k\x00")
    assert "\x00" not in parsed.title
    assert "\x00" not in parsed.key
    assert len(parsed.title) == TITLE_MAX
    assert finding(title="").title == "B608"
    assert finding(title="", rule_id="").title == "untitled"


def test_a_severity_outside_the_four_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="severity 'info'"):
        finding(severity="info")
    with pytest.raises(ValueError, match="triage 'wontfix'"):
        finding(triage=("wontfix", "because"))


# --- keys from the flagged lines -----------------------------------------------------------------


def test_a_snippet_key_drops_line_numbers_and_indentation() -> None:
    moved = "41     query = 'SELECT ' + name\n42     cursor.execute(query)\n"
    original = "7 query = 'SELECT ' + name\n8 cursor.execute(query)"
    assert snippet_key(moved) == snippet_key(original)
    assert snippet_key(moved) == "query = 'SELECT ' + name\ncursor.execute(query)"
    assert snippet_key(None) == ""
    assert snippet_key("") == ""


def test_normalise_ignores_whitespace_blank_lines_and_comments() -> None:
    a = identity.normalise(["call(a,", "     b)"])
    b = identity.normalise(["call(a,", "", "  # why b", "  b)"])
    assert a == b == "call(a,\nb)"
    assert identity.normalise(["// note", "-- sql note", "/* c */", "* c"]) == ""


def test_normalise_keeps_the_first_lines_of_a_long_statement() -> None:
    lines = [f"arg{i}," for i in range(20)]
    assert identity.normalise(lines).split("\n") == lines[: identity.KEY_LINES]


def test_bandit_key_is_the_flagged_lines_without_the_context() -> None:
    code = "9 import os\n10 query = 'x' + y\n11 cursor.execute(query)\n12 print(1)\n"
    assert identity.bandit_key(code, [10, 11], 11) == "cursor.execute(query)"
    # Without a usable line number, the whole range.
    assert identity.bandit_key(code, [10, 11], None) == "query = 'x' + y\ncursor.execute(query)"
    # A range that does not reach the line: the line itself.
    assert identity.bandit_key(code, [], 12) == "print(1)"


@pytest.mark.parametrize(
    ("code", "line_range", "line_number"),
    [(None, [1], 1), (42, [1], 1), ("1 x\n", "1-2", True), ("1 x\n", [True, "2"], "1")],
)
def test_bandit_key_of_values_of_the_wrong_type_is_empty_or_partial(
    code: Any, line_range: Any, line_number: Any
) -> None:
    assert identity.bandit_key(code, line_range, line_number) in ("", "x")


# --- identical keys in one file ------------------------------------------------------------------


def test_identical_keys_at_different_lines_are_numbered_top_to_bottom() -> None:
    lines = [30, 10, 20]
    found = identity.number([finding(f"app/db.py:{n}", key="import subprocess") for n in lines])
    by_line = {f.location: f.fingerprint for f in found}
    plain = fingerprint("bandit", "B608", "app/db.py", "import subprocess")
    assert by_line["app/db.py:10"] == plain  # the first keeps the fingerprint it had
    assert by_line["app/db.py:20"] == fingerprint(
        "bandit", "B608", "app/db.py", "import subprocess\x1e1"
    )
    assert by_line["app/db.py:30"] == fingerprint(
        "bandit", "B608", "app/db.py", "import subprocess\x1e2"
    )


def test_a_line_inserted_above_leaves_every_identity_as_it_was() -> None:
    before = identity.number([finding(f"a.py:{n}", key="k") for n in (10, 20)])
    after = identity.number([finding(f"a.py:{n}", key="k") for n in (11, 21)])
    assert [f.fingerprint for f in before] == [f.fingerprint for f in after]


def test_numbering_leaves_same_line_duplicates_and_other_files_alone() -> None:
    same_line = identity.number([finding("a.py:5", key="k"), finding("a.py:5", key="k")])
    assert same_line[0].fingerprint == same_line[1].fingerprint
    files = identity.number([finding("a.py:5", key="k"), finding("b.py:9", key="k")])
    assert [f.fingerprint for f in files] == [
        fingerprint("bandit", "B608", "a.py", "k"),
        fingerprint("bandit", "B608", "b.py", "k"),
    ]


def test_duplicates_collapse_into_one_finding_with_occurrences() -> None:
    first, second, other = finding("a.py:5"), finding("a.py:9"), finding("b.py:5")
    collapsed = collapse([first, second, other])
    assert collapsed == [first, other]
    assert (first.occurrences, other.occurrences) == (2, 1)
