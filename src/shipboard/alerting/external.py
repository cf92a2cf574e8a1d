"""Alerts that already exist elsewhere: Alertmanager's webhook (v4) delivers them; they show
beside Shipboard's own, and one that fires in an environment during a deployment's watch fails
its verification (pipelines/watch.py).

An alert belongs to an environment by that environment's ``config.external_alert_matchers``
when it has them (all must hold, Alertmanager's matcher semantics); otherwise by the labels
that name it: the first of SHIPBOARD_ALERTMANAGER_ENVIRONMENT_LABELS (default
``environment,env``) the alert carries, when its value is a known environment (kept in the
row's ``environment`` when it arrives). Matchers are applied when alerts are read, so a changed
matcher applies at once, and one alert may belong to several environments. Alertmanager
identifies an alert by its fingerprint and sends it again while it fires and once more when it
resolves (``send_resolved``), so each delivery updates one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from shipboard.alerting import matching, repository
from shipboard.alerting.models import ExternalAlert
from shipboard.alerting.schemas import AlertmanagerWebhook, ExternalAlertPage, ExternalAlertRead
from shipboard.environments import repository as environments
from shipboard.environments.config_sections import ExternalAlertMatcher, check_matchers
from shipboard.environments.validation import stored_mapping

log = structlog.get_logger("shipboard.external_alerts")
DEFAULT_ENVIRONMENT_LABELS = ("environment", "env")
SCAN_PAGE = 1000
SCAN_LIMIT = 20_000
_MATCHERS = TypeAdapter(list[ExternalAlertMatcher])


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
    rows = []
    for alert in webhook.alerts:
        # A firing alert's endsAt is Alertmanager's zero time (year 1) or a resend horizon.
        ends = alert.endsAt if alert.endsAt is not None and alert.endsAt.year > 1 else None
        rows.append(
            {
                "fingerprint": alert.fingerprint,
                "alertname": alert.labels.get("alertname", alert.fingerprint),
                "status": alert.status,
                "environment": environment_of(
                    alert.labels, known=known_environments, label_names=label_names
                ),
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "starts_at": alert.startsAt,
                "ends_at": ends if alert.status == "resolved" else None,
                "generator_url": alert.generatorURL or None,
                "receiver": webhook.receiver or None,
                "updated_at": now,
            }
        )
    repository.upsert_external(session, rows)
    return len(webhook.alerts)


def matchers_of(session: Session, environment: str) -> list[ExternalAlertMatcher] | None:
    """The environment's ``config.external_alert_matchers``, or None when it has none. A stored
    section that no longer validates (written before validation, or by hand) is logged and
    ignored: the environment labels decide, as if it were not there."""
    row = environments.get(session, environment)
    raw = stored_mapping(row.config if row is not None else None).get("external_alert_matchers")
    if raw is None:
        return None
    try:
        return check_matchers(_MATCHERS.validate_python(raw))
    except (ValidationError, ValueError) as exc:
        log.warning("external_alert_matchers_invalid", environment=environment, reason=str(exc))
        return None


def belongs(
    alert: ExternalAlert, *, environment: str, matchers: Sequence[ExternalAlertMatcher] | None
) -> bool:
    """Whether ``alert`` is one of ``environment``'s: by its matchers, else by its labels."""
    if matchers is None:
        return alert.environment == environment
    return matching.matches([m.as_silence_matcher() for m in matchers], dict(alert.labels))


def firing_since(session: Session, *, environment: str, since: datetime) -> list[ExternalAlert]:
    """External alerts firing now in ``environment`` that started at or after ``since``: an
    alert already firing before a release began is not evidence against that release."""
    matchers = matchers_of(session, environment)
    if matchers is None:
        return repository.external_firing(session, environment=environment, since=since)
    return [
        alert
        for alert in repository.external_firing(session, environment=None, since=since)
        if belongs(alert, environment=environment, matchers=matchers)
    ]


def list_external(
    session: Session, *, environment: str | None, status: str | None
) -> ExternalAlertPage:
    """Alerts received from Alertmanager, firing first (at most 500), of one environment (by
    its matchers when it has them) or of all."""
    matchers = matchers_of(session, environment) if environment is not None else None
    if matchers is None:
        rows = repository.list_external(session, environment=environment, status=status)
    else:
        rows = _matching(session, environment=environment or "", matchers=matchers, status=status)
    return ExternalAlertPage(items=[ExternalAlertRead.model_validate(r) for r in rows])


def _matching(
    session: Session, *, environment: str, matchers: list[ExternalAlertMatcher], status: str | None
) -> list[ExternalAlert]:
    """The first 500 alerts (firing first) that ``matchers`` put in ``environment``, read a
    page at a time: filtering only the newest 500 of every environment's alerts showed none of
    an environment whose alerts were older than another's 500. At most ``SCAN_LIMIT`` rows are
    read, so a table of millions costs one bounded request."""
    limit = repository.EXTERNAL_LIST_LIMIT
    found: list[ExternalAlert] = []
    for offset in range(0, SCAN_LIMIT, SCAN_PAGE):
        page = repository.list_external(
            session, environment=None, status=status, offset=offset, limit=SCAN_PAGE
        )
        found += [a for a in page if belongs(a, environment=environment, matchers=matchers)]
        if len(found) >= limit or len(page) < SCAN_PAGE:
            break
    return found[:limit]
