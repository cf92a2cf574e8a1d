"""Native JSON reports: bandit, semgrep, checkov, pip-audit, trivy, npm audit."""

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

SEMGREP_LEVELS = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}


def _first_result_has(doc: dict[str, Any], key: str) -> bool:
    results = doc.get("results")
    return (
        isinstance(results, list)
        and bool(results)
        and isinstance(results[0], dict)
        and key in results[0]
    )


# (format, test on a JSON object), tried in order; the first match wins.
_OBJECT_SIGNATURES: tuple[tuple[str, Any], ...] = (
    ("bandit", lambda d: "results" in d and "generated_at" in d and "metrics" in d),
    (
        "semgrep",
        lambda d: (
            _first_result_has(d, "check_id")
            or ("results" in d and "errors" in d and not d["results"] and "metrics" not in d)
        ),
    ),
    (
        "checkov",
        lambda d: (
            "check_type" in d
            or "checkov_version" in d
            or "checkov_version" in (d.get("summary") or {})
        ),
    ),
    ("pip-audit", lambda d: isinstance(d.get("dependencies"), list)),
    ("trivy", lambda d: "SchemaVersion" in d or "ClusterName" in d),
    ("npm-audit", lambda d: "auditReportVersion" in d or ("advisories" in d and "metadata" in d)),
)


def detect(doc: Any) -> str | None:
    """The native format of a parsed JSON document, or None."""
    if isinstance(doc, dict):
        return next((fmt for fmt, test in _OBJECT_SIGNATURES if test(doc)), None)
    if isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
        if all("check_type" in d for d in doc):
            return "checkov"
        if all("name" in d and "vulns" in d for d in doc):
            return "pip-audit"  # the older pip-audit format: a bare list of dependencies
    return None


def parse(fmt: str, doc: Any) -> tuple[str, list[ParsedFinding], int]:
    parser = PARSERS[fmt]
    findings = parser(doc)
    return TOOLS[fmt], findings, len(findings)


def _bandit(doc: dict[str, Any]) -> list[ParsedFinding]:
    out = []
    for r in doc.get("results") or []:
        path = str(r.get("filename", "")).replace("\\", "/")
        cwe = (r.get("issue_cwe") or {}).get("id")
        out.append(
            ParsedFinding(
                tool="bandit",
                rule_id=f"{r.get('test_id')}:{r.get('test_name')}",
                title=str(r.get("issue_text") or r.get("test_name") or r.get("test_id")),
                description=str(r.get("issue_text") or ""),
                severity=severity_from_word(r.get("issue_severity"), default="medium"),
                location=f"{path}:{r.get('line_number')}" if r.get("line_number") else path or None,
                cwe_id=normalize_cwe(cwe),
                remediation=r.get("more_info"),
                key=snippet_key(r.get("code")) or str(r.get("issue_text") or ""),
            )
        )
    return out


def _semgrep(doc: dict[str, Any]) -> list[ParsedFinding]:
    out = []
    for r in doc.get("results") or []:
        extra = r.get("extra") or {}
        metadata = extra.get("metadata") or {}
        cwe = metadata.get("cwe")
        if isinstance(cwe, list):
            cwe = cwe[0] if cwe else None
        line = (r.get("start") or {}).get("line")
        upstream = extra.get("fingerprint")
        # Logged-out semgrep writes "requires login" where the fingerprint would be.
        usable = upstream if upstream and "requires login" not in str(upstream) else None
        lines = extra.get("lines")
        snippet = None if not lines or "requires login" in str(lines) else lines
        out.append(
            ParsedFinding(
                tool="semgrep",
                rule_id=str(r.get("check_id")),
                title=str(r.get("check_id")).rsplit(".", 1)[-1],
                description=str(extra.get("message") or ""),
                severity=SEMGREP_LEVELS.get(str(extra.get("severity")).upper(), "medium"),
                location=f"{r.get('path')}:{line}" if line else r.get("path"),
                cwe_id=normalize_cwe(cwe),
                remediation=extra.get("fix") or next(iter(metadata.get("references") or []), None),
                # Logged out, semgrep hides both fingerprint and lines: the message is what is
                # left that does not move with the code.
                key=str(usable) if usable else (snippet_key(snippet) or str(extra.get("message"))),
            )
        )
    return out


def _checkov(doc: Any) -> list[ParsedFinding]:
    reports = doc if isinstance(doc, list) else [doc]
    out = []
    for report in reports:
        for check in (report.get("results") or {}).get("failed_checks") or []:
            resource = check.get("resource") or ""
            path = check.get("file_path") or ""
            lines = check.get("file_line_range") or [None]
            out.append(
                ParsedFinding(
                    tool="checkov",
                    rule_id=str(check.get("check_id")),
                    title=str(check.get("check_name") or check.get("check_id")),
                    description=f"{check.get('check_name')} ({resource})",
                    severity=severity_from_word(check.get("severity"), default="medium"),
                    location=f"{path}:{lines[0]}"
                    if lines and lines[0] is not None
                    else path or resource,
                    cwe_id=None,
                    remediation=check.get("guideline"),
                    key=f"{resource}|{report.get('check_type', '')}",
                )
            )
    return out


def _pip_audit(doc: Any) -> list[ParsedFinding]:
    dependencies = doc.get("dependencies") if isinstance(doc, dict) else doc
    out = []
    for dep in dependencies or []:
        for vuln in dep.get("vulns") or []:
            package = f"{dep.get('name')}@{dep.get('version')}"
            fixes = vuln.get("fix_versions") or []
            out.append(
                ParsedFinding(
                    tool="pip-audit",
                    rule_id=str(vuln.get("id")),
                    title=f"{vuln.get('id')} in {dep.get('name')}:{dep.get('version')}",
                    description=str(vuln.get("description") or vuln.get("id")),
                    # pip-audit's JSON carries no severity; the advisory's CVSS would, if given.
                    severity=severity_from_score(float(vuln["cvss"]))
                    if isinstance(vuln.get("cvss"), int | float)
                    else "medium",
                    location=package,
                    cwe_id=None,
                    remediation=f"Upgrade to version: {', '.join(fixes)}" if fixes else None,
                    key=f"{package}|{vuln.get('id')}",
                )
            )
    return out


def _trivy(doc: dict[str, Any]) -> list[ParsedFinding]:
    results = list(doc.get("Results") or [])
    # The Kubernetes cluster format lists resources, each with its own results.
    resources = list(doc.get("Resources") or [])
    if "ClusterName" in doc:
        resources += list(doc.get("Vulnerabilities") or []) + list(
            doc.get("Misconfigurations") or []
        )
    for resource in resources:
        for result in resource.get("Results") or []:
            target = f"{resource.get('Namespace')}/{resource.get('Kind')}/{resource.get('Name')}"
            results.append({**result, "Target": f"{target} {result.get('Target', '')}".strip()})
    out = []
    for result in results:
        target = str(result.get("Target") or "")
        for v in result.get("Vulnerabilities") or []:
            package = f"{v.get('PkgName')}@{v.get('InstalledVersion')}"
            cwes = v.get("CweIDs") or []
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=str(v.get("VulnerabilityID")),
                    title=" ".join(
                        str(v.get(k)) for k in ("VulnerabilityID", "PkgName", "InstalledVersion")
                    ),
                    description=str(
                        v.get("Description") or v.get("Title") or v.get("VulnerabilityID")
                    ),
                    severity=severity_from_word(v.get("Severity"), default="low"),
                    location=f"{target} {package}".strip(),
                    cwe_id=normalize_cwe(cwes[0]) if cwes else None,
                    remediation=f"Upgrade to {v['FixedVersion']}"
                    if v.get("FixedVersion")
                    else None,
                    key=f"{target}|{package}|{v.get('VulnerabilityID')}",
                )
            )
        for m in result.get("Misconfigurations") or []:
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=str(m.get("ID")),
                    title=f"{m.get('ID')} - {m.get('Title')}",
                    description=str(m.get("Description") or m.get("Message") or ""),
                    severity=severity_from_word(m.get("Severity"), default="low"),
                    location=target or None,
                    cwe_id=None,
                    remediation=m.get("Resolution"),
                    key=f"{target}|{m.get('ID')}|{m.get('Message')}",
                )
            )
        for s in result.get("Secrets") or []:
            line = s.get("StartLine")
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=str(s.get("RuleID")),
                    title=f"Secret detected: {s.get('Title')}",
                    description=str(s.get("Title") or s.get("RuleID")),
                    severity=severity_from_word(s.get("Severity"), default="low"),
                    location=f"{target}:{line}" if line else target or None,
                    cwe_id="CWE-798",
                    remediation="Remove the secret from the code and rotate it",
                    key=f"{target}|{s.get('RuleID')}|{s.get('Match')}",
                )
            )
    return out


def _npm(doc: dict[str, Any]) -> list[ParsedFinding]:
    out = []
    if "advisories" in doc:
        for advisory in (doc.get("advisories") or {}).values():
            for finding in advisory.get("findings") or [{}]:
                package = f"{advisory.get('module_name')}@{finding.get('version')}"
                out.append(
                    ParsedFinding(
                        tool="npm audit",
                        rule_id=str(advisory.get("id")),
                        title=str(advisory.get("title")),
                        description=str(advisory.get("overview") or advisory.get("title")),
                        severity=severity_from_word(advisory.get("severity"), default="medium"),
                        location=package,
                        cwe_id=normalize_cwe(advisory.get("cwe")),
                        remediation=advisory.get("recommendation"),
                        key=f"{package}|{advisory.get('id')}",
                    )
                )
        return out
    for name, vuln in (doc.get("vulnerabilities") or {}).items():
        via = [v for v in vuln.get("via") or [] if isinstance(v, dict)]
        source = via[0] if via else {}
        cwe = (
            (source.get("cwe") or [None])[0]
            if isinstance(source.get("cwe"), list)
            else source.get("cwe")
        )
        out.append(
            ParsedFinding(
                tool="npm audit",
                rule_id=str(source.get("source") or source.get("url") or name),
                title=str(source.get("title") or name),
                description=str(source.get("title") or name),
                severity=severity_from_word(vuln.get("severity"), default="medium"),
                location=f"{name}@{vuln.get('range')}",
                cwe_id=normalize_cwe(cwe),
                remediation="Fix available" if vuln.get("fixAvailable") else None,
                key=f"{name}|{source.get('source') or source.get('url') or name}",
            )
        )
    return out


PARSERS = {
    "bandit": _bandit,
    "semgrep": _semgrep,
    "checkov": _checkov,
    "pip-audit": _pip_audit,
    "trivy": _trivy,
    "npm-audit": _npm,
}
TOOLS = {
    "bandit": "bandit",
    "semgrep": "semgrep",
    "checkov": "checkov",
    "pip-audit": "pip-audit",
    "trivy": "trivy",
    "npm-audit": "npm audit",
}
__all__ = ["ImportFailed", "detect", "parse"]
