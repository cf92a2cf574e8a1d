"""Alert rules: created, replaced, switched off and deleted; a rule that goes away resolves its
alert and tells the channels that heard it fire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from shipboard.alerting import repository
from shipboard.alerting.alerts import channels_of, webhook_alert
from shipboard.alerting.models import Alert, AlertRule
from shipboard.alerting.schemas import AlertRuleCreate, AlertRuleRead
from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.errors import Conflict, InvalidInput, NotFound
from shipboard.core.promql import NOT_CONFIGURED
from shipboard.core.time import utcnow
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.notifications import delivery, grouping
from shipboard.notifications import repository as notifications


def create_rule(
    session: Session,
    *,
    data: AlertRuleCreate,
    audit_context: AuditContext,
    store_configured: bool = False,
) -> AlertRuleRead:
    """Create an alert rule; the channels it names must exist, and a promql rule needs the
    metrics store (``store_configured``: SHIPBOARD_PROMETHEUS_URL is set)."""
    _check_store(data, store_configured)
    require_environment(session, data.environment)
    if repository.rule_named(session, data.name) is not None:
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
    repository.add_rule(session, rule)
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.create",
        target_type="alert_rule",
        target_id=data.name,
    )
    return rule_read(rule)


def update_rule(
    session: Session,
    *,
    data: AlertRuleCreate,
    audit_context: AuditContext,
    store_configured: bool = False,
) -> AlertRuleRead:
    """Replace the rule named ``data.name`` in place: its id, alerts and history are kept."""
    _check_store(data, store_configured)
    require_environment(session, data.environment)
    rule = repository.rule_named(session, data.name)
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
        **({"metric": rule.metric} if rule.metric is not None else {}),
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
    for rule in repository.all_rules(session):
        fields = rule_fields(rule)
        try:
            specs.append(AlertRuleCreate.model_validate(fields))
        except ValidationError:
            # Stored by an older version or by hand: still shown, so a diff can replace it.
            specs.append(AlertRuleCreate.model_construct(**fields))
    return specs


def _check_store(data: AlertRuleCreate, store_configured: bool) -> None:
    # Refused on write: a rule stored now would only ever show "error".
    if data.kind == "promql" and not store_configured:
        raise InvalidInput(
            f"a promql rule needs a metrics store: {NOT_CONFIGURED}",
            errors=[{"loc": ["body", "kind"], "msg": f"{NOT_CONFIGURED} on this server"}],
        )


def _check_channels(session: Session, names: list[str]) -> None:
    known = notifications.existing_channel_names(session, names)
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
    return [rule_read(r) for r in repository.all_rules(session)]


def get_rule(session: Session, *, rule_id: uuid.UUID) -> AlertRuleRead:
    """One rule."""
    return rule_read(_require_rule(session, rule_id))


def delete_rule(session: Session, *, rule_id: uuid.UUID, audit_context: AuditContext) -> None:
    """Remove a rule and its alerts; a firing alert is resolved and its channels told first."""
    rule = _require_rule(session, rule_id)
    _stand_down(session, rule, utcnow(), "rule deleted")
    repository.delete_rule(session, rule)
    audit.record(
        session,
        context=audit_context,
        action="alert_rule.delete",
        target_type="alert_rule",
        target_id=rule.name,
    )


def delete_rule_named(session: Session, *, name: str, audit_context: AuditContext) -> None:
    """Remove the rule called ``name`` and its alerts."""
    rule = repository.rule_named(session, name)
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
    for alert in repository.active_alerts(session, rule.id):
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
    told = webhook_alert(alert)
    for channel in channels_of(session, rule):
        if channel.kind != "alertmanager" and not channel.send_resolved:
            continue
        key, group_labels = grouping.group_key_for(channel, alert.labels)
        group = notifications.get_group(session, channel.id, key)
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
    rule = repository.get_rule(session, rule_id)
    if rule is None:
        raise NotFound(f"alert rule {rule_id} does not exist")
    return rule
