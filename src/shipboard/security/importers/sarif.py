"""SARIF 2.1.0 from any tool, several runs per file."""

from __future__ import annotations

from typing import Any

from shipboard.security.importers.common import (
    ImportFailed,
    ParsedFinding,
    normalize_cwe,
    severity_from_score,
    severity_from_word,
    snippet_key,
)

LEVELS = {"error": "high", "warning": "medium", "note": "low", "none": "low"}


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and "runs" in doc and ("$schema" in doc or "version" in doc)


def parse(doc: dict[str, Any]) -> tuple[str, list[ParsedFinding], int]:
    if str(doc.get("version")) != "2.1.0":
        raise ImportFailed(f"SARIF version {doc.get('version')!r} is not supported; expected 2.1.0")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise ImportFailed("SARIF 'runs' must be a list")
    findings: list[ParsedFinding] = []
    tools: list[str] = []
    results_seen = 0
    for run in runs:
        driver = ((run.get("tool") or {}).get("driver") or {}) if isinstance(run, dict) else {}
        tool = str(driver.get("name") or "sarif")
        tools.append(tool)
        rules = {r.get("id"): r for r in driver.get("rules") or [] if isinstance(r, dict)}
        rule_list = [r for r in driver.get("rules") or [] if isinstance(r, dict)]
        taxa = _taxa(run)
        artifacts = run.get("artifacts") or []
        for result in run.get("results") or []:
            if not isinstance(result, dict):
                continue
            results_seen += 1
            if result.get("kind", "fail") != "fail":
                continue
            rule = _rule_of(result, rules, rule_list)
            findings.append(_finding(tool, result, rule, taxa, artifacts))
    tool_name = tools[0] if len(set(tools)) == 1 else "+".join(dict.fromkeys(tools)) or "sarif"
    return tool_name, findings, results_seen


def _rule_of(result: dict[str, Any], rules: dict[Any, Any], rule_list: list[Any]) -> dict[str, Any]:
    rule_id = result.get("ruleId") or (result.get("rule") or {}).get("id")
    if rule_id in rules:
        return dict(rules[rule_id])
    index = result.get("ruleIndex", (result.get("rule") or {}).get("index"))
    if isinstance(index, int) and 0 <= index < len(rule_list):
        return dict(rule_list[index])
    return {"id": rule_id}


def _taxa(run: dict[str, Any]) -> dict[str, str]:
    out = {}
    for taxonomy in run.get("taxonomies") or []:
        for taxon in taxonomy.get("taxa") or []:
            if isinstance(taxon, dict) and taxon.get("id"):
                out[str(taxon["id"])] = str(taxon["id"])
    return out


def _severity(result: dict[str, Any], rule: dict[str, Any]) -> str:
    raw = (rule.get("properties") or {}).get("security-severity")
    if raw is None:
        raw = (result.get("properties") or {}).get("security-severity")
    if raw is not None:
        try:
            return severity_from_score(float(raw))
        except (TypeError, ValueError):
            return severity_from_word(raw, default="low")
    level = (
        result.get("level") or (rule.get("defaultConfiguration") or {}).get("level") or "warning"
    )
    return LEVELS.get(str(level).lower(), "medium")


def _cwe(result: dict[str, Any], rule: dict[str, Any]) -> str | None:
    properties = {**(rule.get("properties") or {}), **(result.get("properties") or {})}
    for raw in (properties.get("cwe"), *(properties.get("tags") or [])):
        candidate = (raw[0] if raw else None) if isinstance(raw, list) else raw
        cwe = (
            normalize_cwe(candidate)
            if candidate is not None and "cwe" in str(candidate).lower()
            else None
        )
        if cwe:
            return cwe
    for relation in rule.get("relationships") or []:
        target = (relation.get("target") or {}).get("id")
        if target and normalize_cwe(target):
            return normalize_cwe(target)
    for taxon in result.get("taxa") or []:
        if isinstance(taxon, dict) and taxon.get("id") and normalize_cwe(f"CWE-{taxon['id']}"):
            return normalize_cwe(f"CWE-{taxon['id']}")
    return None


def _location(result: dict[str, Any], artifacts: list[Any]) -> tuple[str | None, str]:
    for location in result.get("locations") or []:
        physical = (location or {}).get("physicalLocation") or {}
        artifact = physical.get("artifactLocation") or {}
        uri = artifact.get("uri")
        if (
            uri is None
            and isinstance(artifact.get("index"), int)
            and artifact["index"] < len(artifacts)
        ):
            uri = ((artifacts[artifact["index"]] or {}).get("location") or {}).get("uri")
        region = physical.get("region") or {}
        snippet = ((region.get("snippet") or {}).get("text")) or ""
        if uri:
            line = region.get("startLine")
            return (f"{uri}:{line}" if line else str(uri)), snippet
    return None, ""


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text") or value.get("markdown") or "")
    return str(value or "")


def _finding(
    tool: str,
    result: dict[str, Any],
    rule: dict[str, Any],
    taxa: dict[str, str],
    artifacts: list[Any],
) -> ParsedFinding:
    rule_id = str(result.get("ruleId") or rule.get("id") or "unknown")
    message = _text(result.get("message"))
    location, snippet = _location(result, artifacts)
    prints = result.get("partialFingerprints") or result.get("fingerprints") or {}
    if prints:
        key = "|".join(f"{k}:{v}" for k, v in sorted(prints.items()))
    else:
        key = snippet_key(snippet) or message
    title = _text(rule.get("shortDescription")) or _text(rule.get("name")) or rule_id
    description = message or _text(rule.get("fullDescription")) or title
    help_text = _text(rule.get("help")) or (rule.get("helpUri") or None)
    del taxa
    return ParsedFinding(
        tool=tool,
        rule_id=rule_id,
        title=title[:1024] or rule_id,
        description=description,
        severity=_severity(result, rule),
        location=location,
        cwe_id=_cwe(result, rule),
        remediation=help_text or None,
        key=key,
        suppressed=bool(result.get("suppressions")),
    )
