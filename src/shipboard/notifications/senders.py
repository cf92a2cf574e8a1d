"""Turning a notification into a request to a receiver: Alertmanager webhook, Slack, email,
Alertmanager's own API. Each returns (ok, status code or None, error text)."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
from email.message import EmailMessage
from html import escape
from typing import Any

import httpx

from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy, OutboundRefused

TIMEOUT_S = 5.0
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end" in its webhook payload


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    payload: dict[str, Any],
    *,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    public_url: str = DEFAULT_PUBLIC_URL,
) -> tuple[bool, int | None, str | None]:
    payload = with_links(payload, public_url)
    try:
        if kind == "email":
            _email(config, secrets, payload, outbound)
            return True, None, None
        url, body, headers = _http_request(kind, config, secrets, payload)
        # The guarded client: no link-local or metadata address, whatever the name resolves to.
        with outbound.client(timeout=TIMEOUT_S) as client:
            response = client.post(url, content=body, headers=headers)
    # ValueError: a mail header the email package refuses (a CR or LF in `to`, stored before
    # channels were validated for it) fails this delivery, recorded, instead of the sender loop.
    except (httpx.HTTPError, smtplib.SMTPException, OSError, OutboundRefused, ValueError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return True, response.status_code, None
    return False, response.status_code, f"HTTP {response.status_code}"


def _http_request(
    kind: str, config: dict[str, Any], secrets: dict[str, str], payload: dict[str, Any]
) -> tuple[str, bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json", "User-Agent": "shipboard"}
    if kind == "webhook":
        body = json.dumps({k: v for k, v in payload.items() if k != "attachments"}).encode()
        if secrets.get("secret"):
            headers["X-Shipboard-Signature"] = sign(secrets["secret"], body)
        return str(config["url"]), body, headers
    if kind == "slack":
        return str(config["url"]), json.dumps({"text": text_summary(payload)}).encode(), headers
    alerts = [
        {
            "labels": a["labels"],
            "annotations": a["annotations"],
            "startsAt": a["startsAt"],
            # A firing alert's endsAt is when Alertmanager may consider it resolved if it hears
            # nothing more (flush_groups sets it; the zero time means none).
            "endsAt": a["endsAt"] if a.get("endsAt") not in (None, ZERO_TIME) else None,
            "generatorURL": a.get("generatorURL", ""),
        }
        for a in payload.get("alerts", [])
    ]
    url = str(config["url"]).rstrip("/") + "/api/v2/alerts"
    return (
        url,
        json.dumps([{k: v for k, v in a.items() if v is not None} for a in alerts]).encode(),
        headers,
    )


def with_links(payload: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The payload with its links (stored as paths: ``externalURL``, ``url``, each alert's
    ``generatorURL``) made absolute with the URL people reach Shipboard at."""
    base = public_url.rstrip("/")

    def absolute(value: Any) -> Any:
        if not isinstance(value, str) or not value.startswith("/"):
            return value
        return base + value if value != "/" else base + "/"

    out = dict(payload)
    for key in ("externalURL", "url"):
        if key in out:
            out[key] = absolute(out[key])
    if isinstance(out.get("alerts"), list):
        out["alerts"] = [
            {**a, "generatorURL": absolute(a["generatorURL"])}
            if isinstance(a, dict) and "generatorURL" in a
            else a
            for a in out["alerts"]
        ]
    return out


def text_summary(payload: dict[str, Any]) -> str:
    if "message" in payload:
        link = payload.get("url")
        return f"{payload['message']}\n{link}" if isinstance(link, str) else str(payload["message"])
    alerts = payload.get("alerts", [])
    head = f"[{payload.get('status', 'firing').upper()}:{len(alerts)}] " + ", ".join(
        f"{k}={v}" for k, v in sorted(payload.get("groupLabels", {}).items())
    )
    lines = [head]
    for alert in alerts:
        summary = alert["annotations"].get("summary") or alert["labels"].get("alertname", "")
        lines.append(f"- {alert['status']}: {summary} ({_labels(alert)})")
        if alert.get("generatorURL"):
            lines.append(f"  {alert['generatorURL']}")
    return "\n".join(lines)


def _email(
    config: dict[str, Any],
    secrets: dict[str, str],
    payload: dict[str, Any],
    outbound: OutboundPolicy,
) -> None:
    message = EmailMessage()
    message["From"] = str(config["from"])
    recipients = config["to"] if isinstance(config["to"], list) else [config["to"]]
    message["To"] = ", ".join(str(r) for r in recipients)
    text = text_summary(payload)
    message["Subject"] = text.splitlines()[0][:200]
    message.set_content(text)
    attachments = payload.get("attachments") or {}
    if attachments:  # a scheduled report: its own HTML inline, its CSV attached
        message.add_alternative(str(attachments.get("html", "")), subtype="html")
        if attachments.get("csv"):
            message.add_attachment(
                str(attachments["csv"]["content"]).encode(),
                maintype="text",
                subtype="csv",
                filename=str(attachments["csv"]["filename"]),
            )
        _smtp_send(config, secrets, message, outbound)
        return
    rows = "".join(
        f"<tr><td>{escape(a['status'])}</td>"
        f"<td>{escape(a['annotations'].get('summary') or a['labels'].get('alertname', ''))}</td>"
        f"<td>{escape(_labels(a))}</td>"
        f'<td><a href="{escape(a.get("generatorURL") or "")}">details</a></td></tr>'
        for a in payload.get("alerts", [])
    )
    message.add_alternative(
        f"<html><body><h2>{escape(text.splitlines()[0])}</h2>"
        "<table border='1' cellpadding='4'>"
        f"<tr><th>status</th><th>summary</th><th>labels</th><th></th></tr>{rows}</table>"
        "</body></html>",
        subtype="html",
    )
    _smtp_send(config, secrets, message, outbound)


class _GuardedSMTP(smtplib.SMTP):
    """SMTP that connects only where the outbound policy allows, like the HTTP senders: the
    name is resolved once, every address checked, and the connection goes to one that passed
    (so a name that resolves, or re-resolves, to a metadata address is refused). The host name
    itself is kept for STARTTLS's certificate check."""

    def __init__(self, host: str, port: int, *, timeout: float, outbound: OutboundPolicy) -> None:
        self._outbound = outbound  # before super().__init__, which connects
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        address = self._outbound.resolve(host, port)[0]
        return socket.create_connection((address, port), timeout, self.source_address)


def _smtp_send(
    config: dict[str, Any],
    secrets: dict[str, str],
    message: EmailMessage,
    outbound: OutboundPolicy,
) -> None:
    host, port = str(config["host"]), int(config.get("port", 25))
    with _GuardedSMTP(host, port, timeout=TIMEOUT_S, outbound=outbound) as smtp:
        if config.get("starttls"):
            smtp.starttls()
        if config.get("username") and secrets.get("password"):
            smtp.login(str(config["username"]), secrets["password"])
        smtp.send_message(message)


def _labels(alert: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
