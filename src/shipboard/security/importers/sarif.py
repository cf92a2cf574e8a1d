"""SARIF 2.1.0 from any tool, several runs per file.

Read as the OASIS spec says: messages from templates (§3.11), one finding per location (§3.27.12),
rules found through their tool component (§3.52), suppressions (§3.27.23, §3.35) and
``baselineState`` (§3.27.24)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shipboard.security.importers.common import (
    SARIF_LEVELS,
    SECURITY_SEVERITY_WORDS,
    ImportFailed,
    ParsedFinding,
    arr,
    describe,
    expected,
    first_sentence,
    key,
    line,
    normalize_cwe,
    obj,
    objects,
    path_of,
    severity_from_score,
    severity_from_word,
    snippet_key,
    text,
)


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and "runs" in doc and ("$schema" in doc or "version" in doc)


@dataclass
class _Component:
    """A tool component (the driver or an extension) and its rules, by id and by index."""

    path: str
    doc: dict[str, Any]
    rules: list[tuple[str, dict[str, Any]]]
    by_id: dict[str, tuple[str, dict[str, Any]]]

    @classmethod
    def read(cls, doc: dict[str, Any], path: str) -> _Component:
        rules = objects(doc.get("rules"), path, ".rules")
        by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        for at, rule in rules:
            rule_id = key(rule.get("id"), at, ".id")
            if rule_id is not None:
                by_id.setdefault(rule_id, (at, rule))
        return cls(path, doc, rules, by_id)


@dataclass
class _Run:
    path: str
    tool: str
    driver: _Component
    extensions: list[_Component]
    artifacts: list[tuple[str, dict[str, Any]]]
    # What a rule alone decides (title, help, and severity and CWE for results that add
    # nothing of their own), read once per rule: a 20,000-result run has a few dozen rules.
    by_rule: dict[str, tuple[str | None, str | None, str, str | None]] = field(default_factory=dict)


def parse(doc: dict[str, Any]) -> tuple[str, list[ParsedFinding], int]:
    if str(doc.get("version")) != "2.1.0":
        raise ImportFailed(
            f"$.version: SARIF version {describe(doc.get('version'))} is not supported; "
            "expected 2.1.0"
        )
    if not isinstance(doc.get("runs"), list):
        raise expected("$.runs", "a list of runs", doc.get("runs"))
    findings: list[ParsedFinding] = []
    tools: list[str] = []
    results_seen = 0
    for at, raw in objects(doc["runs"], "$.runs"):
        run = _read_run(raw, at)
        tools.append(run.tool)
        for rat, result in objects(raw.get("results"), at, ".results"):
            results_seen += 1
            kind = key(result.get("kind"), rat, ".kind") or "fail"
            if kind != "fail":
                continue
            # "absent": in the baseline but not in this run, so no longer there (§3.27.24).
            if key(result.get("baselineState"), rat, ".baselineState") == "absent":
                continue
            findings.extend(_findings(run, result, rat))
    tool_name = tools[0] if len(set(tools)) == 1 else "+".join(dict.fromkeys(tools)) or "sarif"
    return tool_name, findings, results_seen


def _read_run(run: dict[str, Any], at: str) -> _Run:
    tool = obj(run.get("tool"), at, ".tool")
    driver = _Component.read(obj(tool.get("driver"), at, ".tool.driver"), f"{at}.tool.driver")
    extensions = [
        _Component.read(extension, eat)
        for eat, extension in objects(tool.get("extensions"), at, ".tool.extensions")
    ]
    return _Run(
        path=at,
        tool=text(driver.doc.get("name")) or "sarif",
        driver=driver,
        extensions=extensions,
        artifacts=objects(run.get("artifacts"), at, ".artifacts"),
    )


def _rule_of(run: _Run, result: dict[str, Any], at: str) -> tuple[str, dict[str, Any], _Component]:
    """The result's reportingDescriptor, its path, and the component holding it (§3.27.5–3.27.7,
    §3.52)."""
    reference = obj(result.get("rule"), at, ".rule")
    rule_id = key(result.get("ruleId"), at, ".ruleId") or key(reference.get("id"), at, ".rule.id")
    index = result.get("ruleIndex", reference.get("index"))
    component = run.driver
    target = obj(reference.get("toolComponent"), at, ".rule.toolComponent")
    if target:
        position = target.get("index")
        name = text(target.get("name"))
        if isinstance(position, int) and 0 <= position < len(run.extensions):
            component = run.extensions[position]
        elif name:
            component = next(
                (e for e in run.extensions if text(e.doc.get("name")) == name), run.driver
            )
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(component.rules):
        return (*component.rules[index], component)
    for candidate in (rule_id, (rule_id or "").split("/", 1)[0]):  # hierarchical ids: "CA2101/1"
        for holder in (component, run.driver, *run.extensions):
            if candidate and candidate in holder.by_id:
                return (*holder.by_id[candidate], holder)
    return at, ({"id": rule_id} if rule_id else {}), component


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\d+)\}")


def fill(template: str, arguments: list[str]) -> str:
    """A message string with its placeholders filled (§3.11.5): ``{n}`` is argument n, ``{{`` and
    ``}}`` are literal braces, and a placeholder without its argument stays as it is."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        n = int(match.group(1))
        return arguments[n] if n < len(arguments) else token

    return _PLACEHOLDER.sub(replace, template)


def _plain(value: Any, at: str, suffix: str = "") -> str | None:
    """A multiformatMessageString's plain text, its Markdown when it has no text (§3.12)."""
    if isinstance(value, str):
        return value
    message = obj(value, at, suffix)
    return text(message.get("text")) or text(message.get("markdown"))


def message_text(
    message: Any, at: str, rule: dict[str, Any], component: _Component, driver: _Component
) -> str:
    """A result's message (§3.11): its own text, else the string its ``id`` names in the rule's
    ``messageStrings``, the rule's component's ``globalMessageStrings`` or the driver's, with
    the ``arguments`` filled in."""
    if isinstance(message, str):  # not SARIF, but some producers write it so
        return message
    message = obj(message, at, ".message")
    arguments = [text(a) or "" for a in arr(message.get("arguments"), at, ".message.arguments")]
    own = text(message.get("text")) or text(message.get("markdown"))
    if own is not None:
        return fill(own, arguments) if arguments else own
    string_id = key(message.get("id"), at, ".message.id")
    if string_id is None:
        return ""
    for holder, name in (
        (rule, "messageStrings"),
        (component.doc, "globalMessageStrings"),
        (driver.doc, "globalMessageStrings"),
    ):
        strings = holder.get(name)
        if isinstance(strings, dict) and string_id in strings:
            template = text(strings[string_id]) if isinstance(strings[string_id], str) else None
            if isinstance(strings[string_id], dict):
                template = _plain(strings[string_id], f"{name}.{string_id}")
            if template is not None:
                return fill(template, arguments)
    # The string is missing from the file: say which, with what the tool passed.
    return f"[{string_id}] " + " ".join(arguments) if arguments else f"[{string_id}]"


def _severity(result: dict[str, Any], rule: dict[str, Any], at: str, rat: str) -> str:
    for holder, where in ((rule, rat), (result, at)):
        properties = holder.get("properties")
        raw = properties.get("security-severity") if isinstance(properties, dict) else None
        if raw is None:
            continue
        path = f"{where}.properties.security-severity"
        if isinstance(raw, str):
            try:
                score = float(raw)
            except ValueError:
                return severity_from_word(raw, words=SECURITY_SEVERITY_WORDS, path=path)
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            score = float(raw)
        else:
            raise expected(path, "a score from 0.0 to 10.0", raw)
        if not math.isfinite(score):
            raise expected(path, "a score from 0.0 to 10.0", raw)
        return severity_from_score(score)
    level = result.get("level")
    path = f"{at}.level"
    if level is None:
        level = obj(rule.get("defaultConfiguration"), rat, ".defaultConfiguration").get("level")
        path = f"{rat}.defaultConfiguration.level"
    return severity_from_word(level, words=SARIF_LEVELS, path=path, default="medium")


def _cwe(result: dict[str, Any], rule: dict[str, Any]) -> str | None:
    rule_properties = rule.get("properties")
    result_properties = result.get("properties")
    properties = {
        **(rule_properties if isinstance(rule_properties, dict) else {}),
        **(result_properties if isinstance(result_properties, dict) else {}),
    }
    tags = properties.get("tags")
    for raw in (properties.get("cwe"), *(tags if isinstance(tags, list) else [])):
        candidate = (raw[0] if raw else None) if isinstance(raw, list) else raw
        value = text(candidate)
        cwe = normalize_cwe(value) if value is not None and "cwe" in value.lower() else None
        if cwe:
            return cwe
    relationships = rule.get("relationships")
    for relation in relationships if isinstance(relationships, list) else []:
        target = relation.get("target") if isinstance(relation, dict) else None
        cwe = normalize_cwe(text(target.get("id"))) if isinstance(target, dict) else None
        if cwe:
            return cwe
    taxa = result.get("taxa")
    for taxon in taxa if isinstance(taxa, list) else []:
        if isinstance(taxon, dict) and isinstance(taxon.get("id"), str | int):
            cwe = normalize_cwe(f"CWE-{taxon['id']}")
            if cwe:
                return cwe
    return None


def _place(run: _Run, location: dict[str, Any], at: str) -> tuple[str | None, str]:
    """A location as ``uri:line`` (or its logical name), and the snippet there."""
    physical = obj(location.get("physicalLocation"), at, ".physicalLocation")
    artifact = obj(physical.get("artifactLocation"), at, ".physicalLocation.artifactLocation")
    uri = key(artifact.get("uri"), at, ".physicalLocation.artifactLocation.uri")
    index = artifact.get("index")
    if uri is None and isinstance(index, int) and 0 <= index < len(run.artifacts):
        apath, entry = run.artifacts[index]
        uri = key(obj(entry.get("location"), apath, ".location").get("uri"), apath, ".uri")
    region = obj(physical.get("region"), at, ".physicalLocation.region")
    snippet = text(obj(region.get("snippet"), at, ".physicalLocation.region.snippet").get("text"))
    number = line(region.get("startLine"), at, ".physicalLocation.region.startLine")
    if uri:
        return (f"{uri}:{number}" if number is not None else uri), snippet or ""
    logical = [
        text(entry.get("fullyQualifiedName")) or text(entry.get("name"))
        for _, entry in objects(location.get("logicalLocations"), at, ".logicalLocations")
    ]
    return next((name for name in logical if name), None), snippet or ""


_SUPPRESSION_STATUSES = ("accepted", "underReview", "rejected")


def _suppression(result: dict[str, Any], at: str) -> tuple[str, str] | None:
    """The triage a result's suppressions carry (§3.27.23): suppressed when every suppression
    is accepted (no status means accepted); one under review or rejected keeps it open."""
    suppressions = objects(result.get("suppressions"), at, ".suppressions")
    if not suppressions:
        return None
    reasons = []
    for sat, suppression in suppressions:
        status = key(suppression.get("status"), sat, ".status") or "accepted"
        if status not in _SUPPRESSION_STATUSES:
            raise ImportFailed(
                f"{sat}.status: unknown suppression status {describe(status)}; expected one of "
                + ", ".join(_SUPPRESSION_STATUSES)
            )
        if status != "accepted":
            return None
        kind = key(suppression.get("kind"), sat, ".kind") or "external"
        justification = text(suppression.get("justification"))
        reasons.append(f"suppressed {kind}" + (f": {justification}" if justification else ""))
    return "false_positive", "SARIF: " + "; ".join(reasons)


def _findings(run: _Run, result: dict[str, Any], at: str) -> list[ParsedFinding]:
    rat, rule, component = _rule_of(run, result, at)
    rule_id = key(result.get("ruleId"), at, ".ruleId") or text(rule.get("id"))
    message = message_text(result.get("message"), at, rule, component, run.driver)
    prints = obj(result.get("partialFingerprints"), at, ".partialFingerprints") or obj(
        result.get("fingerprints"), f"{at}.fingerprints"
    )
    prints_key = "|".join(f"{k}:{text(v)}" for k, v in sorted(prints.items()))
    cached = run.by_rule.get(rat) if rat != at else None  # rat == at: no rule in the file
    if cached is None:
        cached = (
            _plain(rule.get("shortDescription"), rat, ".shortDescription")
            or text(rule.get("name")),
            _plain(rule.get("help"), rat, ".help") or text(rule.get("helpUri")),
            _severity({}, rule, at, rat),
            _cwe({}, rule),
        )
        if rat != at:
            run.by_rule[rat] = cached
    heading, remediation, severity, cwe = cached
    # A result's own level, properties or taxa take part; most results have a level only.
    if "level" in result or "properties" in result:
        severity = _severity(result, rule, at, rat)
    if "properties" in result or "taxa" in result:
        cwe = _cwe(result, rule)
    title = (
        heading
        or rule_id
        # No rule at all: the message's first sentence says what was found.
        or first_sentence(message)
        or "SARIF result"
    )
    description = message or _plain(rule.get("fullDescription"), rat, ".fullDescription") or title
    triage = _suppression(result, at)
    # Every location is a place to fix (DefectDojo does the same): one finding each, so fixing
    # one place does not hide the others. A result without locations is still one finding.
    places = [
        _place(run, location, lat)
        for lat, location in objects(result.get("locations"), at, ".locations")
    ] or [(None, "")]
    out = []
    seen: Counter[tuple[str, str]] = Counter()
    for location, snippet in places:
        place_key = prints_key or snippet_key(snippet) or message
        if len(places) > 1:
            # Places of one result in one file that nothing else tells apart (no snippet): the
            # second, third … such place is its own finding, not a repeat of the first.
            file = path_of(location)
            seen[(file, place_key)] += 1
            if seen[(file, place_key)] > 1:
                place_key = f"{place_key}|place {seen[(file, place_key)]}"
        out.append(
            ParsedFinding(
                tool=run.tool,
                rule_id=rule_id or "unknown",
                title=title,
                description=description,
                severity=severity,
                location=location,
                cwe_id=cwe,
                remediation=remediation or None,
                key=place_key,
                triage=triage,
            )
        )
    return out
