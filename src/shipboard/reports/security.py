"""The security report: open findings by severity and type, overdue, time to resolve, top CWEs,
the score over time — as JSON, CSV, a small HTML page, or SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard import __version__
from shipboard.security.models import SecurityScan
from shipboard.security.service import current_findings

SCORES = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def security_report(session: Session, *, environment: str) -> dict[str, Any]:
    rows = current_findings(session, environment=environment, limit=1_000_000)
    open_ = [r for r in rows if r["status"] == "open"]
    resolved = [r for r in rows if r["resolved_after_s"] is not None]
    mttr: dict[str, float | None] = {}
    for severity in ("critical", "high", "medium", "low"):
        times = [r["resolved_after_s"] for r in resolved if r["severity"] == severity]
        mttr[severity] = statistics.fmean(times) if times else None
    scans = session.execute(
        sa.select(SecurityScan.completed_at, SecurityScan.type, SecurityScan.summary)
        .where(SecurityScan.environment == environment, SecurityScan.status == "completed")
        .order_by(SecurityScan.completed_at)
    ).all()
    return {
        "environment": environment,
        "open_by_severity": dict(Counter(r["severity"] for r in open_)),
        "open_by_type": dict(Counter(r["scan_type"] for r in open_)),
        "open": len(open_),
        "triaged": sum(1 for r in rows if r["status"] == "triaged"),
        "overdue": sum(1 for r in open_ if r["overdue"]),
        "mean_time_to_resolve_s": mttr,
        "top_cwes": [
            {"cwe_id": c, "open": n}
            for c, n in Counter(r["cwe_id"] for r in open_ if r["cwe_id"]).most_common(10)
        ],
        "score_over_time": [
            {
                "at": at.isoformat() if at else None,
                "type": kind,
                "compliance_score": (summary or {}).get("compliance_score"),
            }
            for at, kind, summary in scans
        ],
        "findings": open_,
    }


def to_sarif(report: dict[str, Any]) -> dict[str, Any]:
    """The open findings as one SARIF 2.1.0 log, one run per tool."""
    runs: dict[str, dict[str, Any]] = {}
    for row in report["findings"]:
        run = runs.setdefault(
            row["tool"], {"tool": {"driver": {"name": row["tool"], "rules": []}}, "results": []}
        )
        rule_id = row["cwe_id"] or re.sub(r"\W+", "-", row["title"])[:64]
        rules = run["tool"]["driver"]["rules"]
        if all(r["id"] != rule_id for r in rules):
            rules.append(
                {
                    "id": rule_id,
                    "shortDescription": {"text": row["title"][:1000]},
                    "properties": {
                        "security-severity": SCORES[row["severity"]],
                        "tags": ["security", *([row["cwe_id"]] if row["cwe_id"] else [])],
                    },
                }
            )
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "level": LEVELS[row["severity"]],
            "message": {"text": row["description"] or row["title"]},
            "partialFingerprints": {"shipboard/v1": row["fingerprint"]},
        }
        location = row["location"] or ""
        match = re.fullmatch(r"(.+?):(\d+)", location)
        if match and "@" not in location:
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": match.group(1)},
                        "region": {"startLine": max(1, int(match.group(2)))},
                    }
                }
            ]
        elif location:
            result["locations"] = [{"logicalLocations": [{"fullyQualifiedName": location}]}]
        run["results"].append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": list(runs.values())
        or [{"tool": {"driver": {"name": "shipboard", "version": __version__}}, "results": []}],
    }
