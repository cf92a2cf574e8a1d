"""One evaluation round: every enabled rule against the stored metrics (or, for a promql rule,
the answer its store gave before the round began), its alerts moved through the state machine
(evaluation.py), and the notifier's view of what each group holds."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shipboard.alerting import evaluation, matching, repository
from shipboard.alerting.alerts import channels_of, webhook_alert
from shipboard.alerting.evaluation import ACTIVE
from shipboard.alerting.models import Alert, AlertRule
from shipboard.alerting.schemas import RULE_VARIABLES
from shipboard.core.errors import InvalidInput
from shipboard.core.promql import Sample, render
from shipboard.core.time import utcnow
from shipboard.environments.validation import stored_mapping
from shipboard.monitoring import repository as metrics
from shipboard.notifications import grouping
from shipboard.notifications.models import NotificationChannel

# What the store answered a promql rule's query: its samples, or why there are none.
Answer = list[Sample] | str


def promql_queries(session: Session) -> dict[uuid.UUID, str]:
    """The rendered query of every enabled promql rule, by rule id: what to ask the store
    before the round (``tasks.evaluate``), outside its transaction."""
    out: dict[uuid.UUID, str] = {}
    for rule in repository.enabled_rules(session):
        if rule.kind == "promql" and (query := _rendered(rule)) is not None:
            out[rule.id] = query
    return out


def _rendered(rule: AlertRule) -> str | None:
    query = stored_mapping(rule.spec).get("query")
    if not isinstance(query, str):
        return None
    try:
        return render(query, dict.fromkeys(RULE_VARIABLES, rule.environment))
    except InvalidInput:
        return None


def evaluate_rules(
    session: Session,
    *,
    now: datetime | None = None,
    promql: Mapping[uuid.UUID, tuple[str, Answer]] | None = None,
) -> int:
    """Evaluate every enabled rule once at ``now``; returns how many alerts changed state.

    ``promql`` holds, by rule id, the query asked and what the store answered, asked before
    this transaction (``tasks.evaluate``); a promql rule without an answer to its current query
    (created or changed since) waits for the next round."""
    now = now or utcnow()
    answers = promql or {}
    changed = 0
    for rule in repository.enabled_rules(session):
        if rule.kind == "promql":
            query = _rendered(rule)
            if query is None:
                _failed(rule, now, "the rule's stored query cannot be rendered; write it again")
            elif rule.id in answers and answers[rule.id][0] == query:
                changed += _evaluate_promql(session, rule, answers[rule.id][1], now)
            continue
        try:
            with session.begin_nested():
                condition = _condition(session, rule, now)
        except (SQLAlchemyError, ValueError, KeyError) as exc:
            _failed(rule, now, f"{type(exc).__name__}: {exc}")
            continue
        rule.last_error = None
        rule.last_evaluated_at = now
        changed += _apply(session, rule, condition, now, alert=_active(session, rule))
    session.flush()
    return changed


def _failed(rule: AlertRule, now: datetime, reason: str) -> None:
    # A rule that cannot be evaluated is shown as erroring, never as quietly green; its alerts
    # stay as they were (an unanswered question is not a recovery).
    rule.last_error = reason[:500]
    rule.last_evaluated_at = now


def _evaluate_promql(session: Session, rule: AlertRule, answer: Answer, now: datetime) -> int:
    """Each series of the answer moves its own alert; an alert whose series is gone from the
    answer sees its condition false (it resolves, after keep_firing_for_s when it fired)."""
    if isinstance(answer, str):
        _failed(rule, now, answer)
        return 0
    spec = stored_mapping(rule.spec)
    try:
        threshold = spec.get("value")
        series = evaluation.promql(
            [(s.labels, s.value) for s in answer],
            op=str(spec.get("op", ">")),
            value=None if threshold is None else float(threshold),
            rule_labels=_labels(rule),
        )
    except (ValueError, KeyError, TypeError) as exc:
        _failed(rule, now, str(exc))
        return 0
    rule.last_error = None
    rule.last_evaluated_at = now
    active = {a.fingerprint: a for a in repository.active_alerts(session, rule.id)}
    changed = 0
    for item in series:
        key = evaluation.fingerprint(item.labels)
        changed += _apply(
            session, rule, item.condition, now, alert=active.pop(key, None), labels=item.labels
        )
    gone = evaluation.Condition(False, None, "the series is no longer in the query's answer")
    for alert in active.values():
        changed += _apply(session, rule, gone, now, alert=alert)
    return changed


def _condition(session: Session, rule: AlertRule, now: datetime) -> evaluation.Condition:
    spec = rule.spec
    tags = spec.get("tags") or {}
    window = timedelta(seconds=float(spec["window_s"]))
    metric = rule.metric
    if metric is None:
        raise ValueError(f"a {rule.kind} rule needs a metric")

    def values(since: datetime, until: datetime) -> list[float]:
        return metrics.values(
            session,
            environment=rule.environment,
            name=metric,
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


def _labels(rule: AlertRule) -> dict[str, str]:
    return {
        "alertname": rule.name,
        "environment": rule.environment,
        "severity": rule.severity,
        **rule.labels,
    }


def _active(session: Session, rule: AlertRule) -> Alert | None:
    return repository.active_alert(session, rule.id)


def _apply(
    session: Session,
    rule: AlertRule,
    condition: evaluation.Condition,
    now: datetime,
    *,
    alert: Alert | None,
    labels: dict[str, str] | None = None,
) -> int:
    """Move ``alert`` (None: the rule has none active for these labels) one step; a new one
    gets ``labels`` (the rule's own when None)."""
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
    labels = labels if labels is not None else _labels(rule)
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
