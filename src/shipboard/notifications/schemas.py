"""Shapes of notification channels and deliveries."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipboard.core.types import HttpUrlStr

# Stored encrypted (like environment secrets), never read back. The URL is one: Slack's and
# Discord's webhook paths, a ?token= or user:pass@ in it, are the credential.
SECRET_KEYS = ("secret", "password", "smtp_password", "url", "api_token", "token")


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    kind: Literal["webhook", "slack", "email", "alertmanager"]
    config: dict[str, Any]
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])
    group_wait_s: int = Field(default=30, ge=0, le=86400)
    group_interval_s: int = Field(default=300, ge=0, le=86400)
    repeat_interval_s: int = Field(default=14400, ge=1, le=86400 * 30)
    send_resolved: bool = True

    @model_validator(mode="after")
    def _config_for_kind(self) -> ChannelCreate:
        cfg = self.config
        if self.kind in ("webhook", "slack", "alertmanager"):
            url = cfg.get("url")
            if not isinstance(url, str):
                raise ValueError(f"a {self.kind} channel needs config.url")
            HttpUrlCheck.model_validate({"url": url})
        else:
            for key in ("host", "from", "to"):
                if not cfg.get(key):
                    raise ValueError(f"an email channel needs config.{key}")
            port = cfg.get("port", 25)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ValueError("config.port must be a TCP port")
            _check_email_config(cfg)
        return self


# What goes into an SMTP command or a mail header: one line of printable text. A CR or LF would
# add a header (Bcc:) or an SMTP command; another type fails only when the mail is sent.
_ONE_LINE = re.compile(r"[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?")


def _one_line(value: object, key: str, max_length: int = 320) -> None:
    if not isinstance(value, str) or len(value) > max_length or not _ONE_LINE.fullmatch(value):
        raise ValueError(f"config.{key} must be one line of text, at most {max_length} characters")


def _check_email_config(cfg: dict[str, Any]) -> None:
    _one_line(cfg["host"], "host", 253)
    if " " in cfg["host"]:
        raise ValueError("config.host must be a host name or address")
    _one_line(cfg["from"], "from")
    recipients = cfg["to"] if isinstance(cfg["to"], list) else [cfg["to"]]
    if not 0 < len(recipients) <= 100:
        raise ValueError("config.to must name 1 to 100 recipients")
    for recipient in recipients:
        _one_line(recipient, "to")
    if cfg.get("username") is not None:
        _one_line(cfg["username"], "username")
    if not isinstance(cfg.get("starttls", False), bool):
        raise ValueError("config.starttls must be true or false")


class HttpUrlCheck(BaseModel):
    url: HttpUrlStr


class ChannelRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    config: dict[str, Any] = Field(description="Secrets are listed by name only, as ***")
    group_by: list[str]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int
    send_resolved: bool


class ChannelPage(BaseModel):
    items: list[ChannelRead]


class DeliveryRead(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    event: str
    group_key: str | None
    status: Literal["pending", "sent", "failed"]
    attempts: list[dict[str, Any]]
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
