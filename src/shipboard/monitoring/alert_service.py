"""Alert rules, their evaluation into alerts, and silences."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core import patterns
from shipboard.core.errors import Conflict, InvalidInput, NotFound
from shipboard.core.pagination import encode_cursor
from shipboard.core.time import utcnow
from shipboard.db import keyset
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.monitoring import alerting
from shipboard.monitoring import repository as metrics
from shipboard.monitoring.alert_schemas import (
    AlertPage,
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    SilenceCreate,
    SilenceRead,
)
from shipboard.monitoring.models import Alert, AlertRule, Silence
from shipboard.notifications import delivery, grouping, senders
from shipboard.notifications.models import NotificationChannel, NotificationGroup

ACTIVE = ("pending", "firing")


# --- rules ----------------------------------------------------------------------------------


def create_rule(
    session: Session, *, data: AlertRuleCreate, audit_context: AuditContext
) -> AlertRuleRead:
    """Create an alert rule; the channels it names must exist."""
    require_environment(session, data.environment)
    if session.scalar(sa.select(AlertRule).where(AlertRule.name == data.name)):
        raise Conflict(f"alert rule {data.name!r} already exists")
    _check_channels(session, data.channels)
    now = utcnow()
    rule = AlertRule(
        id=uuid.uuid4(),
        name=data.name,
        kind=data.kind,
        environment=data.environment,
        metric=data.metric,
        spec=data.spec(),
        severity=data.severity,
        labels=data.labels,
        annotations=data.annotations,
        channels=data.channels,
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.create",
        target_type="alert_rule",
        target_id=data.name,
    )
    return rule_read(rule)


def update_rule(
    session: Session, *, data: AlertRuleCreate, audit_context: AuditContext
) -> AlertRuleRead:
    """Replace the rule named ``data.name`` in place: its id, alerts and history are kept."""
    require_environment(session, data.environment)
    rule = session.scalar(sa.select(AlertRule).where(AlertRule.name == data.name))
    if rule is None:
        raise NotFound(f"alert rule {data.name!r} does not exist")
    _check_channels(session, data.channels)
    if rule.enabled and not data.enabled:
        _stand_down(session, rule, utcnow(), "rule disabled")
    rule.kind = data.kind
    rule.environment = data.environment
    rule.metric = data.metric
    rule.spec = data.spec()
    rule.severity = data.severity
    rule.labels = data.labels
    rule.annotations = data.annotations
    rule.channels = data.channels
    rule.enabled = data.enabled
    rule.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.update",
        target_type="alert_rule",
        target_id=data.name,
    )
    return rule_read(rule)


def rule_fields(rule: AlertRule) -> dict[str, Any]:
    """A stored rule as the fields of its write shape (``AlertRuleCreate``), unchecked: a rule
    stored by an older version or by hand may not validate, and its readers decide what then."""
    return {
        "name": rule.name,
        "kind": rule.kind,
        "environment": rule.environment,
        "metric": rule.metric,
        "severity": rule.severity,
        "labels": rule.labels,
        "annotations": rule.annotations,
        "channels": rule.channels,
        "enabled": rule.enabled,
        **stored_mapping(rule.spec),
    }


def rule_specs(session: Session) -> list[AlertRuleCreate]:
    """Every rule as the write shape that would create it (for configuration as code)."""
    specs: list[AlertRuleCreate] = []
    for rule in session.scalars(sa.select(AlertRule).order_by(AlertRule.name)):
        fields = rule_fields(rule)
        try:
            specs.append(AlertRuleCreate.model_validate(fields))
        except ValidationError:
            # Stored by an older version or by hand: still shown, so a diff can replace it.
            specs.append(AlertRuleCreate.model_construct(**fields))
    return specs


def _check_channels(session: Session, names: list[str]) -> None:
    known = set(
        session.scalars(
            sa.select(NotificationChannel.name).where(NotificationChannel.name.in_(names))
        )
    )
    missing = [n for n in names if n not in known]
    if missing:
        raise InvalidInput(
            f"unknown notification channel(s): {', '.join(missing)}",
            errors=[
                {"loc": ["body", "channels", names.index(n)], "msg": "no such channel"}
                for n in missing
            ],
        )


def rule_read(rule: AlertRule) -> AlertRuleRead:
    health = "unknown" if rule.last_evaluated_at is None else ("error" if rule.last_error else "ok")
    fields: dict[str, Any] = {
        "id": rule.id,
        "last_evaluated_at": rule.last_evaluated_at,
        "last_error": rule.last_error,
        "health": health,
        **rule_fields(rule),
    }
    try:
        return AlertRuleRead.model_validate(fields)
    except ValidationError:
        # A rule stored by an older version (or edited by hand) must still be listable,
        # erroring and all, so people can see it and fix it.
        return AlertRuleRead.model_construct(**fields)


def list_rules(session: Session) -> list[AlertRuleRead]:
    """All alert rules with their health."""
    return [rule_read(r) for r in session.scalars(sa.select(AlertRule).order_by(AlertRule.name))]


def get_rule(session: Session, *, rule_id: uuid.UUID) -> AlertRuleRead:
    """One rule."""
    return rule_read(_require_rule(session, rule_id))


def delete_rule(session: Session, *, rule_id: uuid.UUID, audit_context: AuditContext) -> None:
    """Remove a rule and its alerts; a firing alert is resolved and its channels told first."""
    rule = _require_rule(session, rule_id)
    _stand_down(session, rule, utcnow(), "rule deleted")
    session.delete(rule)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.delete",
        target_type="alert_rule",
        target_id=rule.name,
    )


def delete_rule_named(session: Session, *, name: str, audit_context: AuditContext) -> None:
    """Remove the rule called ``name`` and its alerts."""
    rule = session.scalar(sa.select(AlertRule).where(AlertRule.name == name))
    if rule is None:
        raise NotFound(f"alert rule {name!r} does not exist")
    delete_rule(session, rule_id=rule.id, audit_context=audit_context)


def set_rule_enabled(
    session: Session, *, rule_id: uuid.UUID, enabled: bool, audit_context: AuditContext
) -> AlertRuleRead:
    """Turn a rule on or off. Off, its alerts resolve now: nothing would ever resolve them."""
    rule = _require_rule(session, rule_id)
    if rule.enabled == enabled:
        return rule_read(rule)
    now = utcnow()
    if not enabled:
        _stand_down(session, rule, now, "rule disabled")
    rule.enabled = enabled
    rule.updated_at = now
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.enable" if enabled else "alert_rule.disable",
        target_type="alert_rule",
        target_id=rule.name,
    )
    return rule_read(rule)


def _stand_down(session: Session, rule: AlertRule, now: datetime, reason: str) -> None:
    """Resolve the rule's pending or firing alert, and tell each channel that was told it fired
    (Alertmanager included) at once: a deleted rule's alert is gone before the next flush could
    send its resolution, and Alertmanager would otherwise keep it until its endsAt."""
    active = sa.select(Alert).where(Alert.rule_id == rule.id, Alert.state.in_(ACTIVE))
    for alert in list(session.scalars(active)):
        previous = alert.state
        alert.transitions = [
            *alert.transitions,
            {"from": previous, "to": "resolved", "at": now.isoformat(), "reason": reason},
        ]
        alert.state = "resolved"
        alert.ends_at = now
        alert.updated_at = now
        session.flush()
        if previous == "firing":
            _tell_resolved(session, rule, alert, now)
    session.flush()


def _tell_resolved(session: Session, rule: AlertRule, alert: Alert, now: datetime) -> None:
    told = _webhook_alert(alert)
    for channel in _channels(session, rule):
        if channel.kind != "alertmanager" and not channel.send_resolved:
            continue
        key, group_labels = grouping.group_key_for(channel, alert.labels)
        group = session.get(NotificationGroup, (channel.id, key))
        if group is None or (group.last_sent_state or {}).get(alert.fingerprint) != "firing":
            continue  # never told it fired (still waiting, or silenced)
        delivery.enqueue(
            session,
            channel=channel,
            event="alert.resolved",
            group_key=key,
            payload=grouping.webhook_payload(channel.name, "resolved", [told], group_labels),
            now=now,
        )
        group.last_sent_state = {**(group.last_sent_state or {}), alert.fingerprint: "resolved"}


def _require_rule(session: Session, rule_id: uuid.UUID) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"alert rule {rule_id} does not exist")
    return rule


# --- evaluation -----------------------------------------------------------------------------


def evaluate_rules(session: Session, *, now: datetime | None = None) -> int:
    """Evaluate every enabled rule once at ``now``; returns how many alerts changed state."""
    now = now or utcnow()
    changed = 0
    for rule in list(session.scalars(sa.select(AlertRule).where(AlertRule.enabled.is_(True)))):
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


def _condition(session: Session, rule: AlertRule, now: datetime) -> alerting.Condition:
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
        return alerting.threshold(
            values(now - window, now), agg=spec["agg"], op=spec["op"], value=float(spec["value"])
        )
    history = values(now - window - timedelta(seconds=float(spec["history_s"])), now - window)
    return alerting.anomaly(
        history,
        values(now - window, now),
        method=spec["method"],
        sensitivity=float(spec["sensitivity"]),
        min_points=int(spec["min_points"]),
    )


def _apply(session: Session, rule: AlertRule, condition: alerting.Condition, now: datetime) -> int:
    alert = session.scalar(
        sa.select(Alert).where(Alert.rule_id == rule.id, Alert.state.in_(ACTIVE)).limit(1)
    )
    current = (
        alerting.AlertState(
            alert.state, alert.active_since, alert.starts_at, alert.ends_at, alert.last_true_at
        )
        if alert
        else alerting.AlertState("inactive")
    )
    if condition.active is None and alert is None:
        return 0
    # No data keeps the state it had (a gap in metrics is not a recovery).
    active = bool(condition.active) if condition.active is not None else current.state in ACTIVE
    new = alerting.step(
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
            fingerprint=alerting.fingerprint(labels),
            state=new.state,
            labels=labels,
            annotations=dict(rule.annotations),
            transitions=[],
            updated_at=now,
        )
        session.add(alert)
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
        for channel in _channels(session, rule):
            grouping.touch_group(session, channel=channel, labels=alert.labels, now=now)
    return 1


def _channels(session: Session, rule: AlertRule) -> list[NotificationChannel]:
    if not rule.channels:
        return []
    return list(
        session.scalars(
            sa.select(NotificationChannel).where(NotificationChannel.name.in_(rule.channels))
        )
    )


def group_alerts(session: Session, now: datetime) -> Any:
    """For the notifier: a channel's alerts in one group, as webhook alert dicts."""

    def alerts_for(
        channel: NotificationChannel, group_labels: dict[str, str], last_sent_at: datetime | None
    ) -> list[dict[str, Any]]:
        silences = active_silences(session, now)
        rows = session.execute(
            sa.select(Alert, AlertRule.channels)
            .join(AlertRule, AlertRule.id == Alert.rule_id)
            .where(Alert.state.in_(("firing", "resolved")))
        ).all()
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
            if any(alerting.matches(s.matchers, alert.labels) for s in silences):
                continue
            out.append(_webhook_alert(alert))
        return sorted(out, key=lambda a: a["fingerprint"])

    return alerts_for


def alert_path(alert_id: uuid.UUID) -> str:
    """Where an alert's web page is, below SHIPBOARD_PUBLIC_URL."""
    return f"/alerts/{alert_id}"


def _webhook_alert(alert: Alert) -> dict[str, Any]:
    return {
        "status": "firing" if alert.state == "firing" else "resolved",
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": (alert.starts_at or alert.active_since or utcnow()).isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else senders.ZERO_TIME,
        # A path: the sender prefixes SHIPBOARD_PUBLIC_URL, where the alert's page is.
        "generatorURL": alert_path(alert.id),
        "fingerprint": alert.fingerprint,
    }


def list_alerts(
    session: Session, *, state: str | None = None, cursor: str | None = None, limit: int = 50
) -> AlertPage:
    """Alerts, newest change first, a page at a time; `silenced` tells whether a silence mutes
    them now."""
    stmt = sa.select(Alert, AlertRule.name).join(AlertRule, AlertRule.id == Alert.rule_id)
    if state is not None:
        stmt = stmt.where(Alert.state == state)
    stmt = keyset.after(stmt, sort_col=Alert.updated_at, id_col=Alert.id, cursor=cursor)
    rows = session.execute(stmt.limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0].updated_at, rows[-1][0].id)
    silences = active_silences(session, utcnow())
    return AlertPage(
        next_cursor=next_cursor,
        items=[_alert_read(a, name, silences) for a, name in rows],
    )


def get_alert(session: Session, *, alert_id: uuid.UUID) -> AlertRead:
    """One alert with its transitions (the page every link Shipboard sends about it opens)."""
    row = session.execute(
        sa.select(Alert, AlertRule.name)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(Alert.id == alert_id)
    ).first()
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist (its rule may have been deleted)")
    return _alert_read(row[0], row[1], active_silences(session, utcnow()))


def _alert_read(alert: Alert, rule: str, silences: list[Silence]) -> AlertRead:
    return AlertRead(
        id=alert.id,
        rule_id=alert.rule_id,
        rule=rule,
        fingerprint=alert.fingerprint,
        state=alert.state,
        value=alert.value,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        labels=alert.labels,
        annotations=alert.annotations,
        transitions=alert.transitions,
        silenced=any(alerting.matches(s.matchers, alert.labels) for s in silences),
    )


def all_alerts(session: Session, *, state: str | None = None) -> list[AlertRead]:
    """Every alert (in ``state``), page by page: for counts, which a page would cut short."""
    out: list[AlertRead] = []
    cursor: str | None = None
    while True:
        page = list_alerts(session, state=state, cursor=cursor, limit=500)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


# --- silences -------------------------------------------------------------------------------


def active_silences(session: Session, now: datetime) -> list[Silence]:
    return list(
        session.scalars(sa.select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))
    )


def create_silence(
    session: Session, *, data: SilenceCreate, creator: str, audit_context: AuditContext
) -> SilenceRead:
    """Mute notifications of alerts whose labels match, from start to end."""
    problems = [
        {"loc": ["body", "matchers", i, "value"], "msg": problem}
        for i, matcher in enumerate(data.matchers)
        if matcher.isRegex and (problem := patterns.regex_problem(matcher.value)) is not None
    ]
    if problems:
        raise InvalidInput(
            f"matchers[{problems[0]['loc'][2]}].value: {problems[0]['msg']}", errors=problems
        )
    now = utcnow()
    starts = data.starts_at or now
    if data.ends_at <= starts:
        raise InvalidInput(
            "ends_at must be after starts_at",
            errors=[{"loc": ["body", "ends_at"], "msg": "not after start"}],
        )
    silence = Silence(
        id=uuid.uuid4(),
        matchers=[m.model_dump() for m in data.matchers],
        starts_at=starts,
        ends_at=data.ends_at,
        created_by=creator,
        comment=data.comment,
        created_at=now,
    )
    session.add(silence)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="silence.create",
        target_type="silence",
        target_id=str(silence.id),
    )
    return silence_read(silence, now)


def silence_read(silence: Silence, now: datetime) -> SilenceRead:
    return SilenceRead(
        id=silence.id,
        matchers=silence.matchers,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        active=silence.starts_at <= now < silence.ends_at,
    )


def list_silences(session: Session) -> list[SilenceRead]:
    """Silences, newest first."""
    now = utcnow()
    return [
        silence_read(s, now)
        for s in session.scalars(sa.select(Silence).order_by(Silence.created_at.desc()))
    ]


def expire_silence(
    session: Session, *, silence_id: uuid.UUID, audit_context: AuditContext
) -> SilenceRead:
    """End a silence now; what still fires is notified again at the next flush."""
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise NotFound(f"silence {silence_id} does not exist")
    now = utcnow()
    if silence.ends_at > now:
        silence.ends_at = now
        # Groups muted by it must be told again: forget what they last sent.
        for group in session.scalars(sa.select(NotificationGroup)):
            group.last_sent_state = None
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="silence.expire",
        target_type="silence",
        target_id=str(silence_id),
    )
    return silence_read(silence, now)
