"""Alerts that already exist elsewhere: Alertmanager's webhook (v4) delivers them; they show
beside Shipboard's own, and one that fires in an environment during a deployment's watch fails
its verification (pipelines/watch.py).

An alert belongs to the environment its labels name: the first of
SHIPBOARD_ALERTMANAGER_ENVIRONMENT_LABELS (default ``environment,env``) that the alert carries,
when its value is a known environment. Alertmanager identifies an alert by its fingerprint and
sends it again while it fires and once more when it resolves (``send_resolved``), so each
delivery updates one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from shipboard.alerting import repository
from shipboard.alerting.models import ExternalAlert
from shipboard.alerting.schemas import AlertmanagerWebhook, ExternalAlertPage, ExternalAlertRead

DEFAULT_ENVIRONMENT_LABELS = ("environment", "env")


def environment_of(
    labels: dict[str, str], *, known: set[str], label_names: Sequence[str]
) -> str | None:
    """The environment an alert's labels name, or None."""
    for name in label_names:
        value = labels.get(name)
        if value is not None:
            return value if value in known else None
    return None


def receive(
    session: Session,
    *,
    webhook: AlertmanagerWebhook,
    known_environments: set[str],
    label_names: Sequence[str] = DEFAULT_ENVIRONMENT_LABELS,
    now: datetime,
) -> int:
    """Record each alert of a delivery (insert or update by fingerprint); how many."""
    for alert in webhook.alerts:
        # A firing alert's endsAt is Alertmanager's zero time (year 1) or a resend horizon.
        ends = alert.endsAt if alert.endsAt is not None and alert.endsAt.year > 1 else None
        repository.upsert_external(
            session,
            ExternalAlert(
                fingerprint=alert.fingerprint,
                alertname=alert.labels.get("alertname", alert.fingerprint),
                status=alert.status,
                environment=environment_of(
                    alert.labels, known=known_environments, label_names=label_names
                ),
                labels=dict(alert.labels),
                annotations=dict(alert.annotations),
                starts_at=alert.startsAt,
                ends_at=ends if alert.status == "resolved" else None,
                generator_url=alert.generatorURL or None,
                receiver=webhook.receiver or None,
                updated_at=now,
            ),
        )
    return len(webhook.alerts)


def firing_since(session: Session, *, environment: str, since: datetime) -> list[ExternalAlert]:
    """External alerts firing now in ``environment`` that started at or after ``since``: an
    alert already firing before a release began is not evidence against that release."""
    return repository.external_firing(session, environment=environment, since=since)


def list_external(
    session: Session, *, environment: str | None, status: str | None
) -> ExternalAlertPage:
    rows = repository.list_external(session, environment=environment, status=status)
    return ExternalAlertPage(items=[ExternalAlertRead.model_validate(r) for r in rows])
