"""Alertmanager-style grouping: which alerts each channel is told about together, and when."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shipboard.notifications import repository
from shipboard.notifications.delivery import enqueue
from shipboard.notifications.models import NotificationChannel, NotificationGroup

# Prometheus' defaults: firing alerts go to Alertmanager again every minute, each valid for
# four times that (or four evaluation intervals, if longer), so an alert stays active exactly as
# long as it fires and a Shipboard that stops sending lets it lapse.
ALERTMANAGER_RESEND_S = 60.0
VALID_FOR_RESENDS = 4


def webhook_payload(
    receiver: str, status: str, alerts: list[dict[str, Any]], group_labels: dict[str, str]
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4."""

    def common(key: str) -> dict[str, str]:
        if not alerts:
            return {}
        shared = dict(alerts[0][key])
        for alert in alerts[1:]:
            shared = {k: v for k, v in shared.items() if alert[key].get(k) == v}
        return shared

    return {
        "version": "4",
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        # A path: the sender makes every link absolute with SHIPBOARD_PUBLIC_URL (senders.py).
        "externalURL": "/",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
        "truncatedAlerts": 0,
    }


def group_key_for(
    channel: NotificationChannel, labels: dict[str, str]
) -> tuple[str, dict[str, str]]:
    group_labels = {k: labels.get(k, "") for k in channel.group_by}
    return ",".join(f"{k}={v}" for k, v in sorted(group_labels.items())), group_labels


def touch_group(
    session: Session, *, channel: NotificationChannel, labels: dict[str, str], now: datetime
) -> None:
    """Make sure an aggregation group exists for an alert routed to ``channel``."""
    key, group_labels = group_key_for(channel, labels)
    if repository.get_group(session, channel.id, key) is None:
        repository.add_group(
            session,
            NotificationGroup(
                channel_id=channel.id, group_key=key, group_labels=group_labels, first_seen_at=now
            ),
        )


def flush_groups(
    session: Session,
    *,
    now: datetime,
    alerts_for: Any,
    alertmanager_resend_s: float = ALERTMANAGER_RESEND_S,
    eval_interval_s: float = 15.0,
) -> int:
    """Send each group whose state is due: group_wait for a new group, group_interval after a
    change, repeat_interval while nothing changes. ``alerts_for(channel, group_labels)`` gives
    the group's current alerts as webhook alert dicts (firing, and resolved since last send).

    An Alertmanager channel is sent to as Prometheus does instead: every change at once, the
    firing alerts again every ``alertmanager_resend_s``, each with an ``endsAt`` a few intervals
    ahead (Alertmanager does the grouping and waiting itself)."""
    sent = 0
    valid_for = timedelta(seconds=VALID_FOR_RESENDS * max(alertmanager_resend_s, eval_interval_s))
    for group in repository.all_groups(session):
        channel = repository.get_channel(session, group.channel_id)
        if channel is None:
            continue
        to_alertmanager = channel.kind == "alertmanager"
        wait_s, interval_s, repeat_s = (
            (0.0, 0.0, alertmanager_resend_s)
            if to_alertmanager
            else (channel.group_wait_s, channel.group_interval_s, channel.repeat_interval_s)
        )
        alerts = [
            a
            for a in alerts_for(channel, group.group_labels, group.last_sent_at)
            # Alertmanager must hear of a resolution, or it keeps the alert until endsAt.
            if a["status"] == "firing" or channel.send_resolved or to_alertmanager
        ]
        state = {a["fingerprint"]: a["status"] for a in alerts}
        firing = [a for a in alerts if a["status"] == "firing"]
        last = group.last_sent_state or {}
        if group.last_sent_at is None:
            due = bool(firing) and now >= group.first_seen_at + timedelta(seconds=wait_s)
        elif state != {k: v for k, v in last.items() if k in state} or set(state) - set(last):
            due = bool(alerts) and now >= group.last_sent_at + timedelta(seconds=interval_s)
        else:
            due = bool(firing) and now >= group.last_sent_at + timedelta(seconds=repeat_s)
        if not due:
            if not firing and group.last_sent_at is not None and not alerts:
                # Everything resolved and told: the group is done.
                repository.delete_group(session, group)
            continue
        status = "firing" if firing else "resolved"
        if to_alertmanager:
            ends_at = (now + valid_for).isoformat()
            alerts = [{**a, "endsAt": ends_at} if a["status"] == "firing" else a for a in alerts]
        enqueue(
            session,
            channel=channel,
            event=f"alert.{status}",
            group_key=group.group_key,
            payload=webhook_payload(channel.name, status, alerts, group.group_labels),
            now=now,
        )
        group.last_sent_at = now
        group.last_sent_state = {**last, **state}
        sent += 1
    session.flush()
    return sent
