"""One evaluation round: every enabled rule against the stored metrics, its alert moved
through the state machine (evaluation.py), and the notifier's view of what each group holds."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shipboard.alerting import evaluation, matching, repository
from shipboard.alerting.alerts import channels_of, webhook_alert
from shipboard.alerting.evaluation import ACTIVE
from shipboard.alerting.models import Alert, AlertRule
from shipboard.core.time import utcnow
from shipboard.monitoring import repository as metrics
from shipboard.notifications import grouping
from shipboard.notifications.models import NotificationChannel


def evaluate_rules(session: Session, *, now: datetime | None = None) -> int:
    """Evaluate every enabled rule once at ``now``; returns how many alerts changed state."""
    now = now or utcnow()
    changed = 0
    for rule in repository.enabled_rules(session):
        try:
            with session.begin_nested():
                condition = _condition(session, rule, now)
        except (SQLAlchemyError, ValueError, KeyError) as exc:
            # A rule that cannot be evaluated is shown as erroring, never as quietly green.
            rule.last_error = f"{type(exc).__name__}: {exc}"[:500]
            rule.last_evaluated_at = now
            continue
        rule.last_error = None
        rule.last_evaluated_at = now
        changed += _apply(session, rule, condition, now)
    session.flush()
    return changed


def _condition(session: Session, rule: AlertRule, now: datetime) -> evaluation.Condition:
    spec = rule.spec
    tags = spec.get("tags") or {}
    window = timedelta(seconds=float(spec["window_s"]))

    def values(since: datetime, until: datetime) -> list[float]:
        return metrics.values(
            session,
            environment=rule.environment,
            name=rule.metric,
            tags=tags,
            since=since,
            until=until,
        )

    if rule.kind == "threshold":
        return evaluation.threshold(
            values(now - window, now), agg=spec["agg"], op=spec["op"], value=float(spec["value"])
        )
    history = values(now - window - timedelta(seconds=float(spec["history_s"])), now - window)
    return evaluation.anomaly(
        history,
        values(now - window, now),
        method=spec["method"],
        sensitivity=float(spec["sensitivity"]),
        min_points=int(spec["min_points"]),
    )


def _apply(
    session: Session, rule: AlertRule, condition: evaluation.Condition, now: datetime
) -> int:
    alert = repository.active_alert(session, rule.id)
    current = (
        evaluation.AlertState(
            alert.state, alert.active_since, alert.starts_at, alert.ends_at, alert.last_true_at
        )
        if alert
        else evaluation.AlertState("inactive")
    )
    if condition.active is None and alert is None:
        return 0
    # No data keeps the state it had (a gap in metrics is not a recovery).
    active = bool(condition.active) if condition.active is not None else current.state in ACTIVE
    new = evaluation.step(
        current,
        active,
        now,
        for_s=float(rule.spec.get("for_s", 0)),
        keep_firing_for_s=float(rule.spec.get("keep_firing_for_s", 0)),
    )
    if new.state == current.state:
        if alert is not None:
            alert.last_true_at = new.last_true_at
            alert.value = condition.value if condition.value is not None else alert.value
        return 0
    labels = {
        "alertname": rule.name,
        "environment": rule.environment,
        "severity": rule.severity,
        **rule.labels,
    }
    if alert is None:
        alert = Alert(
            id=uuid.uuid4(),
            rule_id=rule.id,
            fingerprint=evaluation.fingerprint(labels),
            state=new.state,
            labels=labels,
            annotations=dict(rule.annotations),
            transitions=[],
            updated_at=now,
        )
        repository.add_alert(session, alert)
    alert.transitions = [
        *alert.transitions,
        {
            "from": current.state,
            "to": new.state,
            "at": now.isoformat(),
            "value": condition.value,
            "reason": condition.reason,
        },
    ]
    alert.state = new.state
    alert.active_since, alert.starts_at, alert.ends_at = (
        new.active_since,
        new.starts_at,
        new.ends_at,
    )
    alert.last_true_at = new.last_true_at
    alert.value = condition.value
    alert.updated_at = now
    session.flush()
    if new.state in ("firing", "resolved") and (new.state == "firing" or current.state == "firing"):
        for channel in channels_of(session, rule):
            grouping.touch_group(session, channel=channel, labels=alert.labels, now=now)
    return 1


def group_alerts(session: Session, now: datetime) -> Any:
    """For the notifier: a channel's alerts in one group, as webhook alert dicts."""

    def alerts_for(
        channel: NotificationChannel, group_labels: dict[str, str], last_sent_at: datetime | None
    ) -> list[dict[str, Any]]:
        silences = repository.active_silences(session, now)
        rows = repository.told_alerts(session)
        out = []
        for alert, channels in rows:
            if channel.name not in channels:
                continue
            if any(alert.labels.get(k, "") != v for k, v in group_labels.items()):
                continue
            if alert.state == "resolved" and (
                alert.starts_at is None
                or (
                    last_sent_at is not None
                    and alert.ends_at is not None
                    and alert.ends_at < last_sent_at
                )
                or last_sent_at is None
            ):
                continue  # never fired, or its resolution was told already
            if any(matching.matches(s.matchers, alert.labels) for s in silences):
                continue
            out.append(webhook_alert(alert))
        return sorted(out, key=lambda a: a["fingerprint"])

    return alerts_for
