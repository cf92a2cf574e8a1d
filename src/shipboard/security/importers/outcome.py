"""Whether a report says its scanner ran, and what it read. Pure.

A report with no findings is a clean scan only if the scanner finished: a semgrep run whose rules
did not load, a bandit run that parsed no file, a SARIF run that did not succeed all write a report
with no results, and reading those as clean resolved every finding of the environment."""

from __future__ import annotations

from typing import Any

from shipboard.security.importers.common import Outcome, ParsedFinding


def _norm(path: Any) -> str:
    return str(path).replace("\\", "/")


def _list(value: Any) -> list[Any]:
    # The importers already refused a report whose findings have the wrong shape; the fields
    # read here only say how the run went, so one of the wrong type says nothing.
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reasons(parts: list[str]) -> str:
    # A bounded reason: a thousand broken files must not make a megabyte error message.
    shown = "; ".join(parts[:5])
    more = f" (and {len(parts) - 5} more)" if len(parts) > 5 else ""
    return (shown + more)[:1000]


def of(fmt: str, doc: Any, findings: list[ParsedFinding]) -> Outcome:
    """The outcome of the run that wrote ``doc`` (already parsed as ``fmt``)."""
    if not isinstance(doc, dict):
        return Outcome()
    if fmt == "bandit":
        return _bandit(doc)
    if fmt == "semgrep":
        return _semgrep(doc, findings)
    if fmt == "sarif":
        return _sarif(doc, findings)
    if fmt == "trivy":
        return _trivy(doc)
    return Outcome()


def _bandit(doc: dict[str, Any]) -> Outcome:
    errors = [e for e in _list(doc.get("errors")) if isinstance(e, dict)]
    if not errors:
        return Outcome()
    excluded = frozenset(_norm(e.get("filename")) for e in errors if e.get("filename"))
    metrics = doc.get("metrics")
    # bandit lists every file it opened in its metrics; the errors say which it could not parse.
    files = {_norm(k) for k in metrics if k != "_totals"} if isinstance(metrics, dict) else set()
    covered = frozenset(files - excluded)
    if not covered:
        reasons = [f"{e.get('filename')}: {e.get('reason')}" for e in errors]
        return Outcome(failure=f"bandit read no file: {_reasons(reasons)}")
    return Outcome(covered=covered, excluded=excluded)


def _semgrep(doc: dict[str, Any], findings: list[ParsedFinding]) -> Outcome:
    errors = [e for e in _list(doc.get("errors")) if isinstance(e, dict)]
    fatal = [e for e in errors if str(e.get("level", "")).lower() == "error"]
    excluded = frozenset(_norm(e["path"]) for e in errors if e.get("path"))
    if fatal and not findings:
        reasons = [
            str(e.get("short_msg") or e.get("message") or e.get("type") or "error") for e in fatal
        ]
        return Outcome(failure=f"semgrep failed: {_reasons(reasons)}")
    paths = doc.get("paths")
    scanned = paths.get("scanned") if isinstance(paths, dict) else None
    # With fatal errors the run may have stopped early: only what it says it scanned counts.
    covered = (
        frozenset(_norm(p) for p in scanned)
        if fatal and isinstance(scanned, list)
        else frozenset()
        if fatal
        else None
    )
    return Outcome(covered=covered, excluded=excluded)


def _sarif(doc: dict[str, Any], findings: list[ParsedFinding]) -> Outcome:
    reasons: list[str] = []
    excluded: set[str] = set()
    unsuccessful = False
    for run in _list(doc.get("runs")):
        for invocation in _list(_dict(run).get("invocations")):
            if not isinstance(invocation, dict):
                continue
            notes = [
                n
                for n in _list(invocation.get("toolExecutionNotifications"))
                if isinstance(n, dict) and str(n.get("level", "warning")).lower() == "error"
            ]
            for note in notes:
                for location in _list(note.get("locations")):
                    uri = _dict(
                        _dict(_dict(location).get("physicalLocation")).get("artifactLocation")
                    )
                    if uri.get("uri"):
                        excluded.add(_norm(uri["uri"]))
            if invocation.get("executionSuccessful") is False:
                unsuccessful = True
                reasons += [
                    str((n.get("message") or {}).get("text") or "error")
                    if isinstance(n.get("message"), dict)
                    else str(n.get("message") or "error")
                    for n in notes
                ] or [str(invocation.get("exitCodeDescription") or "execution was not successful")]
    if unsuccessful and not findings:
        return Outcome(failure=f"the scanner reported failure: {_reasons(reasons)}")
    # A run that failed but wrote results: keep them, resolve nothing (what it read is unknown).
    return Outcome(covered=frozenset() if unsuccessful else None, excluded=frozenset(excluded))


def _trivy(doc: dict[str, Any]) -> Outcome:
    if doc.get("Results"):
        return Outcome()
    error = next((doc[k] for k in ("Error", "error", "Errors", "errors") if doc.get(k)), None)
    if error is None:
        return Outcome()
    return Outcome(failure=f"trivy failed: {str(error)[:1000]}")


def target_of(fmt: str, doc: Any) -> str:
    """What the report says was scanned (trivy's ``ArtifactName``: an image, a path, a
    repository), or "" where the format does not say."""
    if fmt == "trivy" and isinstance(doc, dict):
        name = doc.get("ArtifactName") or doc.get("ClusterName")
        if isinstance(name, str):
            return name[:4096]
    return ""
