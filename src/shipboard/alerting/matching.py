"""Silence matchers against alert labels (Alertmanager's semantics). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from shipboard.core import patterns


def matches(matchers: Sequence[dict[str, object]], labels: dict[str, str]) -> bool:
    """Silence matchers: every one must hold (``isEqual`` false negates, ``isRegex`` matches
    the whole value, RE2 syntax as in Alertmanager). A regex that does not compile — only one
    written before validation, or straight into the database — makes the silence match
    nothing: a broken silence mutes no alert, negated or not."""
    for matcher in matchers:
        name, value = str(matcher["name"]), str(matcher["value"])
        actual = labels.get(name, "")
        if matcher.get("isRegex"):
            matched = patterns.regex_matches(value, actual)
            if matched is None:
                return False
            hit = matched
        else:
            hit = actual == value
        if matcher.get("isEqual", True) is False:
            hit = not hit
        if not hit:
            return False
    return True
