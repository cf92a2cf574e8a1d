"""Patterns that users write (silence regexes, workflow and metric globs), matched in linear time.

Python's ``re`` backtracks: ``(a+)+$`` against ``"aaa…b"`` takes exponential time and holds the
GIL while it does, so one silence could stall every request. Every user pattern goes through
RE2 instead (``google-re2``, the engine Alertmanager's Go ``regexp`` shares its syntax with),
which matches in time linear in the text and refuses what it cannot do that way
(backreferences, lookaround). Compiling is bounded too: a size cap on the pattern and on RE2's
program memory. Writes check patterns with :func:`regex_problem` / :func:`glob_problem` and
answer 422; matching treats a pattern that does not compile (one stored before these checks, or
written straight into the database) as matching nothing, and logs it once.
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Any

import re2
import structlog

log = structlog.get_logger("shipboard.patterns")

MAX_PATTERN_CHARS = 1024
# RE2's default is 8 MiB per pattern; a user pattern that needs more is not one we want.
_MAX_PROGRAM_BYTES = 1 << 20
_PUNCTUATION = frozenset(string.punctuation)


def _options(*, ignore_case: bool = False, glob: bool = False) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.max_mem = _MAX_PROGRAM_BYTES
    options.case_sensitive = not ignore_case
    # fnmatch's "*" spans newlines; a regex's "." does not (Go's regexp, so Alertmanager).
    options.dot_nl = glob
    return options


def _problem(pattern: str, *, glob: bool = False) -> str | None:
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"the pattern is longer than {MAX_PATTERN_CHARS} characters"
    try:
        re2.compile(pattern, options=_options(glob=glob))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        return f"not a valid RE2 regular expression: {reason}"
    return None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a regex matcher (RE2 syntax, as Alertmanager), or None."""
    # On its own first: "a)|(b" compiles only once wrapped in the anchors below.
    return _problem(pattern) or _problem(_anchored(pattern))


def glob_problem(glob: str) -> str | None:
    """Why ``glob`` cannot be a shell glob here, or None."""
    if len(glob) > MAX_PATTERN_CHARS:
        return f"the glob is longer than {MAX_PATTERN_CHARS} characters"
    return _problem(_glob_regex(glob), glob=True)


def regex_matches(pattern: str, text: str) -> bool | None:
    """Whether the whole of ``text`` matches ``pattern`` (anchored, ``^(?:pattern)$``); None
    when the pattern does not compile, so the caller decides what a broken pattern means."""
    compiled = _compiled(pattern, ignore_case=False, kind="regex")
    return None if compiled is None else compiled.search(text) is not None


def glob_matches(glob: str, text: str, *, ignore_case: bool = False) -> bool:
    """Whether the whole of ``text`` matches the shell glob (``*``, ``?``, ``[…]``, ``[!…]``)."""
    compiled = _compiled(glob, ignore_case=ignore_case, kind="glob")
    return compiled is not None and compiled.search(text) is not None


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


@lru_cache(maxsize=1024)
def _compiled(pattern: str, *, ignore_case: bool, kind: str) -> Any:
    glob = kind == "glob"
    problem = glob_problem(pattern) if glob else regex_problem(pattern)
    if problem is not None:
        # Cached as None, so a bad stored pattern is logged once per process, not per match.
        log.warning("stored_pattern_invalid", kind=kind, pattern=pattern[:200], reason=problem)
        return None
    source = _glob_regex(pattern) if glob else _anchored(pattern)
    return re2.compile(source, options=_options(ignore_case=ignore_case, glob=glob))


def _glob_regex(glob: str) -> str:
    """The RE2 regex of a shell glob, with fnmatch's rules: ``[!…]`` negates, ``]`` first in a
    class is literal, an unclosed ``[`` is a literal character."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(r"\[")
                continue
            body, i = glob[i:j], j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            # Ranges keep their "-"; everything else in the class is literal.
            members = "".join(c if c == "-" else _literal(c) for c in body)
            out.append(f"[{'^' if negate else ''}{members}]")
        else:
            out.append(_literal(char))
    return "^" + "".join(out) + "$"


def _literal(char: str) -> str:
    return "\\" + char if char in _PUNCTUATION else char
