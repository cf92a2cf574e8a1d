"""Native JSON reports: bandit, semgrep, checkov, pip-audit, trivy, npm audit.

Every value is read through ``common``'s checked accessors, so a report with a wrong type
anywhere is refused with the JSON path of that value, or — for free text — read as text."""

from __future__ import annotations

from typing import Any

from shipboard.security.importers.common import (
    BANDIT_WORDS,
    CHECKOV_WORDS,
    NPM_WORDS,
    SEMGREP_WORDS,
    TRIVY_WORDS,
    ImportFailed,
    ParsedFinding,
    arr,
    describe,
    key,
    line,
    normalize_cwe,
    obj,
    objects,
    severity_from_score,
    severity_from_word,
    snippet_key,
    text,
)
from shipboard.security.importers.identity import bandit_key


def _first_result_has(doc: dict[str, Any], name: str) -> bool:
    results = doc.get("results")
    return (
        isinstance(results, list)
        and bool(results)
        and isinstance(results[0], dict)
        and name in results[0]
    )


def _npm_error(doc: dict[str, Any]) -> bool:
    error = doc.get("error")
    return set(doc) <= {"error", "message"} and isinstance(error, dict) and "code" in error


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
            or (isinstance(d.get("summary"), dict) and "checkov_version" in d["summary"])
        ),
    ),
    ("pip-audit", lambda d: isinstance(d.get("dependencies"), list)),
    ("trivy", lambda d: "SchemaVersion" in d or "ClusterName" in d),
    (
        "npm-audit",
        lambda d: (
            "auditReportVersion" in d or ("advisories" in d and "metadata" in d) or _npm_error(d)
        ),
    ),
)


def detect(doc: Any) -> str | None:
    """The native format of a parsed JSON document, or None."""
    if isinstance(doc, dict):
        return next((fmt for fmt, test in _OBJECT_SIGNATURES if test(doc)), None)
    if isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
        if all("check_type" in d for d in doc):
            return "checkov"
        if all("name" in d and ("vulns" in d or "skip_reason" in d) for d in doc):
            return "pip-audit"  # the older pip-audit format: a bare list of dependencies
        if all("Target" in d for d in doc):
            return "trivy"  # trivy before schema 2 (0.19 and older): a bare list of results
    return None


def parse(fmt: str, doc: Any) -> tuple[str, list[ParsedFinding], int]:
    parser = PARSERS[fmt]
    findings = parser(doc)
    return TOOLS[fmt], findings, len(findings)


def _at(location: str | None, number: int | None) -> str | None:
    if number is not None and location:
        return f"{location}:{number}"
    return location or None


def _bandit(doc: dict[str, Any]) -> list[ParsedFinding]:
    out = []
    for at, r in objects(doc.get("results"), "$.results"):
        filename = (key(r.get("filename"), at, ".filename") or "").replace("\\", "/")
        number = line(r.get("line_number"), at, ".line_number")
        cwe = obj(r.get("issue_cwe"), at, ".issue_cwe").get("id")
        test_id = key(r.get("test_id"), at, ".test_id")
        test_name = key(r.get("test_name"), at, ".test_name")
        issue = text(r.get("issue_text")) or ""
        out.append(
            ParsedFinding(
                tool="bandit",
                rule_id=f"{test_id}:{test_name}",
                title=issue or test_name or test_id or "bandit finding",
                description=issue,
                severity=severity_from_word(
                    r.get("issue_severity"), words=BANDIT_WORDS, path=f"{at}.issue_severity"
                ),
                location=_at(filename, number),
                cwe_id=normalize_cwe(text(cwe)),
                remediation=text(r.get("more_info")),
                # The flagged lines only: `code` carries context lines, and a line inserted
                # above a finding must not make it another finding.
                key=bandit_key(text(r.get("code")), r.get("line_range"), number) or issue,
                legacy_key=snippet_key(text(r.get("code"))) or issue,
            )
        )
    return out


def _semgrep(doc: dict[str, Any]) -> list[ParsedFinding]:
    out = []
    for at, r in objects(doc.get("results"), "$.results"):
        extra = obj(r.get("extra"), at, ".extra")
        metadata = obj(extra.get("metadata"), at, ".extra.metadata")
        cwe = metadata.get("cwe")
        if isinstance(cwe, list):
            cwe = cwe[0] if cwe else None
        references = metadata.get("references")
        if isinstance(references, list):
            references = references[0] if references else None
        number = line(obj(r.get("start"), at, ".start").get("line"), at, ".start.line")
        check_id = key(r.get("check_id"), at, ".check_id") or "unknown"
        message = text(extra.get("message")) or ""
        upstream = text(extra.get("fingerprint"))
        # Logged-out semgrep writes "requires login" where the fingerprint would be.
        usable = upstream if upstream and "requires login" not in upstream else None
        lines = text(extra.get("lines"))
        snippet = None if not lines or "requires login" in lines else lines
        out.append(
            ParsedFinding(
                tool="semgrep",
                rule_id=check_id,
                title=check_id.rsplit(".", 1)[-1],
                description=message,
                severity=severity_from_word(
                    extra.get("severity"), words=SEMGREP_WORDS, path=f"{at}.extra.severity"
                ),
                location=_at(key(r.get("path"), at, ".path"), number),
                cwe_id=normalize_cwe(text(cwe)),
                remediation=text(extra.get("fix")) or text(references),
                # Logged out, semgrep hides both fingerprint and lines: the message is what is
                # left that does not move with the code.
                key=usable or snippet_key(snippet) or message,
            )
        )
    return out


def _checkov(doc: Any) -> list[ParsedFinding]:
    reports = (
        [(f"$[{i}]", obj(r, f"$[{i}]")) for i, r in enumerate(doc)]
        if isinstance(doc, list)
        else [("$", doc)]
    )
    out = []
    for root, report in reports:
        check_type = key(report.get("check_type"), root, ".check_type") or ""
        results = obj(report.get("results"), root, ".results")
        for at, check in objects(results.get("failed_checks"), root, ".results.failed_checks"):
            resource = key(check.get("resource"), at, ".resource") or ""
            path = key(check.get("file_path"), at, ".file_path") or ""
            lines = arr(check.get("file_line_range"), at, ".file_line_range")
            number = line(lines[0], at, ".file_line_range[0]") if lines else None
            check_id = key(check.get("check_id"), at, ".check_id") or "unknown"
            name = text(check.get("check_name")) or check_id
            out.append(
                ParsedFinding(
                    tool="checkov",
                    rule_id=check_id,
                    title=name,
                    description=f"{name} ({resource})",
                    # Open-source checkov without a platform key writes null: DefectDojo's medium.
                    severity=severity_from_word(
                        check.get("severity"),
                        words=CHECKOV_WORDS,
                        path=f"{at}.severity",
                        default="medium",
                    ),
                    location=f"{path}:{number}" if number is not None else path or resource,
                    cwe_id=None,
                    remediation=text(check.get("guideline")),
                    key=f"{resource}|{check_type}",
                )
            )
    return out


def _pip_audit(doc: Any) -> list[ParsedFinding]:
    # pip-audit ≥ 2.0 writes {"dependencies": [...], "fixes": [...]}; before, a bare list.
    if isinstance(doc, dict):
        dependencies = objects(doc.get("dependencies"), "$.dependencies")
    else:
        dependencies = objects(doc, "$")
    out = []
    for at, dep in dependencies:
        name = key(dep.get("name"), at, ".name")
        version = key(dep.get("version"), at, ".version")
        # A skipped dependency (not on PyPI, editable, no version) carries skip_reason and
        # no vulns: nothing was audited, so nothing is found.
        for vat, vuln in objects(dep.get("vulns"), at, ".vulns"):
            vuln_id = key(vuln.get("id"), vat, ".id") or "unknown"
            package = f"{name}@{version}"
            fixes = [
                key(f, f"{vat}.fix_versions[{i}]") or ""
                for i, f in enumerate(arr(vuln.get("fix_versions"), vat, ".fix_versions"))
            ]
            cvss = vuln.get("cvss")
            out.append(
                ParsedFinding(
                    tool="pip-audit",
                    rule_id=vuln_id,
                    title=f"{vuln_id} in {name}:{version}",
                    description=text(vuln.get("description")) or vuln_id,
                    # pip-audit's JSON carries no severity; the advisory's CVSS would, if given.
                    severity=severity_from_score(float(cvss))
                    if isinstance(cvss, int | float) and not isinstance(cvss, bool)
                    else "medium",
                    location=package,
                    cwe_id=None,
                    remediation=f"Upgrade to version: {', '.join(f for f in fixes if f)}"
                    if any(fixes)
                    else None,
                    key=f"{package}|{vuln_id}",
                )
            )
    return out


# Trivy's vendor statuses (trivy.dev "Filtering by status"). Only not_affected says there is
# nothing to fix here; the others describe a real exposure, which stays open and counts, with
# the vendor's position in the remediation text.
TRIVY_STATUS = {
    "not_affected": "this package is not affected by this vulnerability on this platform",
    "affected": "affected, and the vendor has not released a patch yet",
    "fixed": "the vendor has released a fix",
    "under_investigation": "the vendor is investigating whether this package is affected",
    "will_not_fix": "affected, and the vendor does not intend to fix it",
    "fix_deferred": "affected, and the vendor may fix it in the future",
    "end_of_life": "the distribution is end of life: the vendor did not analyse it",
    "unknown": "the vendor gave no status",
}


def _trivy_results(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(doc, list):  # before schema 2
        return objects(doc, "$")
    version = doc.get("SchemaVersion")
    if "SchemaVersion" in doc and version != 2:
        raise ImportFailed(
            f"$.SchemaVersion: trivy schema version {describe(version)} is not supported; "
            "expected 2, or the bare list of results that trivy wrote before it"
        )
    results = objects(doc.get("Results"), "$.Results")
    # The Kubernetes cluster format lists resources, each with its own results.
    resources = objects(doc.get("Resources"), "$.Resources")
    if "ClusterName" in doc:
        resources += objects(doc.get("Vulnerabilities"), "$.Vulnerabilities")
        resources += objects(doc.get("Misconfigurations"), "$.Misconfigurations")
    for at, resource in resources:
        target = "/".join(
            key(resource.get(k), f"{at}.{k}") or "None" for k in ("Namespace", "Kind", "Name")
        )
        for rat, result in objects(resource.get("Results"), at, ".Results"):
            inner = key(result.get("Target"), rat, ".Target") or ""
            results.append((rat, {**result, "Target": f"{target} {inner}".strip()}))
    return results


def _trivy(doc: Any) -> list[ParsedFinding]:
    out = []
    for at, result in _trivy_results(doc):
        target = key(result.get("Target"), at, ".Target") or ""
        for vat, v in objects(result.get("Vulnerabilities"), at, ".Vulnerabilities"):
            vuln_id = key(v.get("VulnerabilityID"), vat, ".VulnerabilityID") or "unknown"
            name = key(v.get("PkgName"), vat, ".PkgName")
            version = key(v.get("InstalledVersion"), vat, ".InstalledVersion")
            package = f"{name}@{version}"
            cwes = arr(v.get("CweIDs"), vat, ".CweIDs")
            status = key(v.get("Status"), vat, ".Status")
            if status is not None and status not in TRIVY_STATUS:
                known = ", ".join(TRIVY_STATUS)
                raise ImportFailed(
                    f"{vat}.Status: unknown status {describe(status)}; expected one of {known}"
                )
            fixed = key(v.get("FixedVersion"), vat, ".FixedVersion")
            advice = [f"Upgrade to {fixed}"] if fixed else []
            if status not in (None, "fixed"):
                advice.append(f"Vendor status {status}: {TRIVY_STATUS[status]}")
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=vuln_id,
                    title=f"{vuln_id} {name} {version}",
                    description=text(v.get("Description")) or text(v.get("Title")) or vuln_id,
                    # Trivy writes UNKNOWN when no source rated it; an entry without the field
                    # says the same.
                    severity=severity_from_word(
                        v.get("Severity"), words=TRIVY_WORDS, path=f"{vat}.Severity", default="low"
                    ),
                    location=f"{target} {package}".strip(),
                    cwe_id=normalize_cwe(text(cwes[0])) if cwes else None,
                    remediation="\n".join(advice) or None,
                    key=f"{target}|{package}|{vuln_id}",
                    triage=("false_positive", f"trivy: not_affected ({TRIVY_STATUS[status]})")
                    if status == "not_affected"
                    else None,
                )
            )
        for mat, m in objects(result.get("Misconfigurations"), at, ".Misconfigurations"):
            state = key(m.get("Status"), mat, ".Status")
            if state == "PASS":
                continue  # --include-non-failures lists the checks that passed too
            check_id = key(m.get("ID"), mat, ".ID") or "unknown"
            message = text(m.get("Message")) or ""
            heading = text(m.get("Title"))
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=check_id,
                    title=f"{check_id} - {heading}" if heading else check_id,
                    description=text(m.get("Description")) or message,
                    severity=severity_from_word(
                        m.get("Severity"), words=TRIVY_WORDS, path=f"{mat}.Severity", default="low"
                    ),
                    location=target or None,
                    cwe_id=None,
                    remediation=text(m.get("Resolution")),
                    key=f"{target}|{check_id}|{message}",
                    triage=("accepted_risk", "trivy: EXCEPTION (an exception policy covers it)")
                    if state == "EXCEPTION"
                    else None,
                )
            )
        for sat, s in objects(result.get("Secrets"), at, ".Secrets"):
            number = line(s.get("StartLine"), sat, ".StartLine")
            rule = key(s.get("RuleID"), sat, ".RuleID") or "unknown"
            title = text(s.get("Title")) or rule
            out.append(
                ParsedFinding(
                    tool="trivy",
                    rule_id=rule,
                    title=f"Secret detected: {title}",
                    description=title,
                    severity=severity_from_word(
                        s.get("Severity"), words=TRIVY_WORDS, path=f"{sat}.Severity", default="low"
                    ),
                    location=f"{target}:{number}" if number is not None else target or None,
                    cwe_id="CWE-798",
                    remediation="Remove the secret from the code and rotate it",
                    key=f"{target}|{rule}|{text(s.get('Match')) or ''}",
                )
            )
    return out


def _npm(doc: dict[str, Any]) -> list[ParsedFinding]:
    if _npm_error(doc):
        error = doc["error"]
        code = text(error.get("code")) or "an error"
        summary = " ".join((text(error.get("summary")) or "").split())
        raise ImportFailed(
            f"npm audit reported {code} instead of a report"
            + (f": {summary}" if summary else "")
            + "; import the report of a successful `npm audit --json`"
        )
    out = []
    if "advisories" in doc:
        for name, raw in obj(doc.get("advisories"), "$.advisories").items():
            at = f"$.advisories.{name}"
            advisory = obj(raw, at)
            module = key(advisory.get("module_name"), at, ".module_name")
            advisory_id = key(advisory.get("id"), at, ".id") or name
            title = text(advisory.get("title")) or advisory_id
            cwe = advisory.get("cwe")
            for fat, finding in objects(advisory.get("findings"), at, ".findings") or [(at, {})]:
                version = key(finding.get("version"), fat, ".version")
                package = f"{module}@{version}"
                out.append(
                    ParsedFinding(
                        tool="npm audit",
                        rule_id=advisory_id,
                        title=title,
                        description=text(advisory.get("overview")) or title,
                        severity=severity_from_word(
                            advisory.get("severity"), words=NPM_WORDS, path=f"{at}.severity"
                        ),
                        location=package,
                        cwe_id=normalize_cwe(
                            text(cwe[0] if isinstance(cwe, list) and cwe else cwe)
                        ),
                        remediation=text(advisory.get("recommendation")),
                        key=f"{package}|{advisory_id}",
                    )
                )
        return out
    version = doc.get("auditReportVersion")
    if version != 2:
        raise ImportFailed(
            f"$.auditReportVersion: npm audit report version {describe(version)} is not "
            "supported; expected 2 (npm 7 and later) or the advisories of npm 6"
        )
    for name, raw in obj(doc.get("vulnerabilities"), "$.vulnerabilities").items():
        at = f"$.vulnerabilities.{name}"
        vuln = obj(raw, at)
        via = [v for v in arr(vuln.get("via"), at, ".via") if isinstance(v, dict)]
        source = via[0] if via else {}
        cwe = source.get("cwe")
        source_id = key(source.get("source"), at, ".via[0].source") or text(source.get("url"))
        title = text(source.get("title")) or name
        out.append(
            ParsedFinding(
                tool="npm audit",
                rule_id=source_id or name,
                title=title,
                description=title,
                severity=severity_from_word(
                    vuln.get("severity"), words=NPM_WORDS, path=f"{at}.severity"
                ),
                location=f"{name}@{text(vuln.get('range')) or ''}",
                cwe_id=normalize_cwe(text(cwe[0] if isinstance(cwe, list) and cwe else cwe)),
                remediation="Fix available" if vuln.get("fixAvailable") else None,
                key=f"{name}|{source_id or name}",
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
