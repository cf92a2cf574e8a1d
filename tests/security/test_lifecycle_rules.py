"""Direct unit tests of the pure security modules: ``lifecycle`` (a finding's state, SLA, triage
carried forward, compliance score) and ``matching`` (a report against known identities)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from shipboard.security import lifecycle, matching
from shipboard.security.importers import parse_report
from shipboard.security.importers.common import REPORT_TRIAGER

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_state_is_resolved_then_triaged_while_the_triage_holds_then_open() -> None:
    assert lifecycle.state("resolved", "accepted_risk", None, NOW) == "resolved"
    assert lifecycle.state("open", "false_positive", None, NOW) == "triaged"
    assert lifecycle.state("open", "accepted_risk", NOW + timedelta(days=1), NOW) == "triaged"
    assert lifecycle.state("open", "accepted_risk", NOW - timedelta(seconds=1), NOW) == "open"
    assert lifecycle.state("open", None, None, NOW) == "open"


def test_sla_days_default_and_override_and_bad_stored_config() -> None:
    assert lifecycle.sla_days({}) == lifecycle.DEFAULT_SLA_DAYS
    custom = lifecycle.sla_days({"security": {"sla_days": {"critical": 1, "high": "soon"}}})
    assert custom == {**lifecycle.DEFAULT_SLA_DAYS, "critical": 1}
    assert lifecycle.sla_days("not an object") == lifecycle.DEFAULT_SLA_DAYS
    assert lifecycle.sla_days({"security": []}) == lifecycle.DEFAULT_SLA_DAYS


def test_only_an_open_finding_past_its_due_moment_is_overdue() -> None:
    due = lifecycle.due_at(NOW - timedelta(days=8), "critical", lifecycle.DEFAULT_SLA_DAYS)
    assert due == NOW - timedelta(days=1)
    assert lifecycle.is_overdue("open", due, NOW)
    assert not lifecycle.is_overdue("triaged", due, NOW)
    assert not lifecycle.is_overdue("resolved", due, NOW)
    assert not lifecycle.is_overdue("open", NOW + timedelta(seconds=1), NOW)


def test_a_persons_triage_carries_forward_and_a_reports_is_the_reports_to_lift() -> None:
    person = ("accepted_risk", "vendor fix in Q1", "alice")
    assert lifecycle.carried_triage(person, None) == person
    assert lifecycle.carried_triage(person, ("false_positive", "suppressed")) == person
    reported = ("false_positive", "suppressed", REPORT_TRIAGER)
    assert lifecycle.carried_triage(reported, None) == lifecycle.NO_TRIAGE
    assert lifecycle.carried_triage(reported, ("accepted_risk", "vex")) == (
        "accepted_risk",
        "vex",
        REPORT_TRIAGER,
    )
    assert lifecycle.carried_triage(None, None) == lifecycle.NO_TRIAGE


def test_compliance_score_weighs_severities_and_stops_at_zero() -> None:
    assert lifecycle.compliance_score([]) == 100.0
    assert lifecycle.compliance_score([("critical", 2), ("low", 3)]) == 77.0
    assert lifecycle.compliance_score([("critical", 11)]) == 0.0
    assert lifecycle.severity_counts(["low", "low", "high"]) == {
        "critical": 0,
        "high": 1,
        "medium": 0,
        "low": 2,
    }


def _report(paths: list[str]) -> Any:
    document = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "semgrep", "rules": [{"id": "r"}]}},
                "results": [
                    {
                        "ruleId": "r",
                        "level": "error",
                        "message": {"text": f"bad in {path}"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": path}}}],
                    }
                    for path in paths
                ],
            }
        ],
    }
    return parse_report(json.dumps(document).encode(), scan_type=None, tool=None)


def _known(finding: Any, **fields: Any) -> Any:
    return SimpleNamespace(
        **{
            "id": str(uuid.uuid4()),
            "target": "",
            "fingerprint": finding.fingerprint,
            "status": "open",
            "resolved_at": None,
            "reopened_count": 0,
            "latest_finding_id": str(uuid.uuid4()),
            "triage_status": None,
            "triage_reason": None,
            "triaged_by": None,
            **fields,
        }
    )


def test_plan_sorts_new_seen_again_reopened_and_gone() -> None:
    report = _report(["a.py", "b.py", "c.py"])
    a, b, _c = report.findings
    seen = _known(a)
    reopened = _known(b, status="resolved", resolved_at=NOW, reopened_count=1)
    gone = _known(a, fingerprint="no-longer-reported")
    plan = matching.plan(
        report,
        [seen, reopened, gone],
        environment="staging",
        target="",
        scan_id=uuid.uuid4(),
        now=NOW,
    )
    assert (plan.new, plan.reopened) == (1, 1)
    assert len(plan.findings) == len(plan.occurrences) == 3
    assert [row[0] for row in plan.created] == [plan.occurrences[2][1]]
    assert plan.created_for == [2]
    # Only the reopened identity changes beyond its latest finding.
    assert [row[0] for row in plan.changed] == [reopened.id]
    assert plan.changed[0][3:6] == ("open", None, 2)
    assert plan.gone == [gone]
    assert [row[3] for row in plan.occurrences] == [False, True, False]
