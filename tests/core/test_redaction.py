"""One redaction for every read path: the function itself, then each path that used to leak."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.redaction import REDACTED, redact, redact_text
from tests.support.databases import Database
from tests.support.live import Clients

SLACK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghiJKL_token"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:hunter2@db.example/app", "https://user:***@db.example/app"),
        ("postgresql://app:p%40ss@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("https://h.example/x?token=abc&page=2", "https://h.example/x?token=***&page=2"),
        ("https://h.example/x?key=abc", "https://h.example/x?key=***"),
        ("https://h.example/x?access_token=abc", "https://h.example/x?access_token=***"),
        (SLACK, "https://hooks.slack.com/services/***"),
        (DISCORD, "https://discord.com/api/webhooks/123456789012345678/***"),
        ("https://h.example/health?page=2", "https://h.example/health?page=2"),
        # Not a URL that parses: text, shown as written, but for a password.
        ("http://x.example]y[/link]", "http://x.example]y[/link]"),
        ("http://u:pw@x.example]y[", "http://u:***@x.example]y["),
    ],
)
def test_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert redact_text(f"healthcheck {url} attempt 1: HTTP 503") == (
        f"healthcheck {shown} attempt 1: HTTP 503"
    )


def test_redaction_descends_into_dicts_and_lists_and_knows_secret_keys() -> None:
    config = {
        "monitoring": {
            "scrape": [
                {"url": "http://m:pw@h:9100/metrics", "bearer_token": "b-123", "interval_s": 15},
                {"url": "http://h:9100/metrics", "basic_auth": {"password": "pw2"}},
            ]
        },
        "pipeline": {"steps": [{"name": "x", "env": {"API_TOKEN": "t", "REGION": "eu"}}]},
        "resend_api_key": "re_1",
        "stripe_publishable_key": "pk_live",
        "channels": [SLACK],
        "authorization": "Bearer abc",
    }
    shown = redact(config)
    assert shown == {
        "monitoring": {
            "scrape": [
                {"url": "http://m:***@h:9100/metrics", "bearer_token": REDACTED, "interval_s": 15},
                {"url": "http://h:9100/metrics", "basic_auth": {"password": REDACTED}},
            ]
        },
        "pipeline": {"steps": [{"name": "x", "env": {"API_TOKEN": REDACTED, "REGION": "eu"}}]},
        "resend_api_key": REDACTED,
        "stripe_publishable_key": "pk_live",
        "channels": ["https://hooks.slack.com/services/***"],
        "authorization": REDACTED,
    }
    assert config["resend_api_key"] == "re_1"  # a copy: the stored value is untouched


def test_viewers_read_channels_and_config_without_credentials(clients: Clients) -> None:
    """A Slack webhook URL, a Discord one, a URL with ``user:pass@`` and ``?token=``; scrape
    targets' passwords and step ``env`` inside lists: never in a read."""
    config = {
        "monitoring": {"scrape": [{"url": "http://m:scrape-pw-1@127.0.0.1:9/metrics"}]},
        "pipeline": {
            "steps": [
                {"name": "s", "stage": "deploy", "run": "true", "env": {"API_TOKEN": "step-tok-3"}}
            ]
        },
    }
    channels = [
        {"name": "slack", "kind": "slack", "config": {"url": SLACK}},
        {"name": "discord", "kind": "webhook", "config": {"url": DISCORD}},
        {
            "name": "hook",
            "kind": "webhook",
            "config": {"url": "https://u:chan-pw-4@hooks.example/x?token=chan-tok-5"},
        },
    ]
    secrets = [
        "XXXXXXXXXXXXXXXXXXXXXXXX",
        "abcDEF-ghiJKL_token",
        "scrape-pw-1",
        "step-tok-3",
        "chan-pw-4",
        "chan-tok-5",
    ]
    with clients.as_role("admin") as admin:
        admin.patch("/api/v1/environments/staging", json={"config": config}).raise_for_status()
        for channel in channels:
            created = admin.post("/api/v1/notification-channels", json=channel)
            assert created.status_code == 201, created.text
    seen = []
    for role in ("viewer", "deployer", "admin"):
        with clients.as_role(role) as client:
            seen.append(client.get("/api/v1/notification-channels").text)
            if role != "admin":
                seen.append(client.get("/api/v1/environments/staging").text)
                seen.append(client.get("/api/v1/environments").text)
    text = "\n".join(seen)
    assert [secret for secret in secrets if secret in text] == []
    assert '"url":"***"' in text  # channel URLs are encrypted, never read back


def test_channel_urls_are_encrypted_at_rest(clients: Clients, db: Database, engine: Engine) -> None:
    """A copied database yields no channel URL: the Slack path (the credential) is not in the
    table's text on PostgreSQL, nor anywhere in the SQLite file and its WAL; deliveries still
    decrypt it."""
    with clients.as_role("admin") as admin:
        created = admin.post(
            "/api/v1/notification-channels",
            json={"name": "enc", "kind": "slack", "config": {"url": SLACK}},
        )
        assert created.status_code == 201, created.text
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM notification_channels")).all()
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in repr(rows)
    if db.backend == "sqlite":
        path = sa.engine.make_url(db.url).database or ""
        # Read by another process: closing a descriptor of the file in this one would drop the
        # live server's POSIX locks on it (SQLite's documented pitfall).
        raw = subprocess.run(
            ["cat", path, *[f for f in (f"{path}-wal",) if Path(f).exists()]],
            capture_output=True,
            check=True,
        ).stdout
        assert b"XXXXXXXXXXXXXXXXXXXXXXXX" not in raw


def test_every_server_log_line_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The structlog processor: a URL's password in any field (the scrape log's ``url``, an
    exception's text) and a field named like a credential never reach the server log."""
    import logging

    import structlog

    from shipboard.config import Settings
    from shipboard.core.logging import configure_logging

    previous = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(Settings(log_json=True, log_level="info"))
        structlog.get_logger("t").warning(
            "scrape_failed",
            url="http://m:scrape-pw@h:9100/metrics?token=q-tok",
            api_token="field-tok",
            error="GET https://hooks.slack.com/services/T1/B2/slack-secret failed",
        )
        logging.getLogger("uvicorn.error").warning("fetch http://u:lib-pw@h/x failed")
    finally:
        structlog.configure(**previous)
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "scrape_failed" in err
    for secret in ("scrape-pw", "q-tok", "field-tok", "slack-secret", "lib-pw"):
        assert secret not in err


def test_scraped_points_carry_the_target_url_without_its_password() -> None:
    """``scrape_target`` is a tag every viewer reads on every scraped point (here the
    ``shipboard_scrape_up`` 0 of a target that does not answer)."""
    from shipboard.monitoring.scrape import Target, scrape

    target = Target(
        environment="staging",
        url="http://probe:scr-pw-7@127.0.0.1:9/metrics?token=scr-tok-6",
        interval_s=60,
        labels={},
    )
    rows = scrape(target)
    assert rows
    assert "scr-pw-7" not in repr(rows)
    assert "scr-tok-6" not in repr(rows)
    assert "probe:***@127.0.0.1:9" in repr(rows)
