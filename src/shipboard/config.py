"""One settings class for the whole process, read from ``SHIPBOARD_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipboard.core import extraheaders
from shipboard.core.errors import InvalidInput

if TYPE_CHECKING:
    from shipboard.core.netguard import OutboundPolicy
    from shipboard.core.promql import PromStore


class Settings(BaseSettings):
    # A refused setting may be a secret (a database URL, a header value): its error shows the
    # message only, never what was given.
    model_config = SettingsConfigDict(
        env_prefix="SHIPBOARD_", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "production", "test"] = "development"
    home: Path = Path(".shipboard")
    database_url: str | None = None
    secret_keys: str | None = Field(
        default=None, description="Comma-separated Fernet keys; the first one encrypts."
    )
    url: str = "http://127.0.0.1:8000"
    token: str | None = None
    log_level: str = "info"
    log_json: bool | None = None
    redis_url: str | None = Field(
        default=None, description="Redis for rate-limit counters shared by several API processes"
    )
    jwt_secret: str | None = Field(default=None, description="HS256 secret for JWT bearer tokens")
    jwt_jwks_url: str | None = Field(
        default=None, description="OIDC JWKS URL for JWT bearer tokens"
    )
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    scan_roots: str = Field(
        default=".", description="Colon-separated directories scan targets must lie inside"
    )
    eval_interval_s: float = Field(default=15, gt=0, description="How often alert rules run")
    alertmanager_resend_s: float = Field(
        default=60,
        gt=0,
        description="How often firing alerts are sent to Alertmanager again (Prometheus' "
        "resend delay); each carries endsAt = now + 4 × max(this, SHIPBOARD_EVAL_INTERVAL_S)",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL people reach Shipboard at, for every link it sends (alerts, "
        "notifications, reports); default: from serve's --host and --port",
    )
    notify_max_attempts: int = Field(default=6, ge=1, le=100)
    notify_max_age_s: float = Field(default=3600, gt=0)
    session_idle_minutes: float = Field(
        default=30, gt=0, description="Browser sessions end after this long without a request"
    )
    retries: int = Field(
        default=3, ge=0, le=10, description="Client: retries of a request that is safe to repeat"
    )
    max_request_mb: float = Field(
        default=64, gt=0, description="Hard cap on any request body, before environment limits"
    )
    streams_per_user: int = Field(
        default=10,
        ge=0,
        description="Live log streams (SSE) one user may hold open in one server process; "
        "past it, 429 with Retry-After. 0 turns the limit off",
    )
    streams_per_process: int = Field(
        default=200,
        ge=0,
        description="Live log streams one server process holds open for everyone; past it, "
        "429 with Retry-After. 0 turns the limit off",
    )
    auth_failures_per_minute: int = Field(
        default=60,
        ge=0,
        description="Wrong credentials (bearer tokens, sign-in passwords and codes) one client "
        "address may present a minute; past it every attempt from there gets 429 with "
        "Retry-After, the right one too. 0 turns the limit off",
    )
    # Operations (docs/operations.md, docs/scaling.md).
    metrics_token: str | None = Field(
        default=None, description="Bearer token Prometheus may scrape /metrics with (else admins)"
    )
    ready_queue_stall_s: float = Field(
        default=120,
        ge=0,
        description="/readyz fails when runnable deployments wait this long with no worker "
        "active; 0 turns the check off",
    )
    shutdown_grace_s: int = Field(
        default=20,
        ge=1,
        description="On SIGTERM, how long open connections (live log streams) may stay before "
        "they are closed; keep it under the orchestrator's own grace period",
    )
    header_timeout_s: float = Field(
        default=10,
        gt=0,
        description="A connection's request line and headers must arrive within this long, "
        "however slowly they trickle in; past it: 408 and the connection is closed",
    )
    body_idle_timeout_s: float = Field(
        default=30,
        gt=0,
        description="A request body may pause this long between two pieces before the "
        "connection is closed",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, '*')",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per process")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load")
    backup_schedule: str | None = Field(
        default=None, description="Cron expression (UTC) for scheduled backups; unset: none"
    )
    backup_keep: int = Field(default=7, ge=1, description="Scheduled backups kept in the dir")
    backup_dir: Path | None = Field(
        default=None, description="Where backups go (default: $SHIPBOARD_HOME/backups)"
    )
    outbound_allow: str = Field(
        default="",
        description="Comma-separated networks (CIDR), addresses or hostnames that webhooks, "
        "healthchecks and scrape targets may reach even though they are link-local or cloud "
        "metadata addresses (docs/security.md, Outbound requests)",
    )

    alertmanager_environment_labels: str = Field(
        default="environment,env",
        description="Labels of alerts received from Alertmanager that name their environment, "
        "tried in order (comma-separated)",
    )
    # The user's Prometheus-compatible store (docs/monitoring.md, issue 23).
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus HTTP API base PromQL watch checks query and series are read "
        "from (Prometheus, VictoriaMetrics, Mimir's /prometheus, Thanos Query)",
    )
    prometheus_bearer_token: str | None = None
    prometheus_username: str | None = None
    prometheus_password: str | None = None
    prometheus_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM) the store's TLS is checked with"
    )
    prometheus_headers: str | None = Field(
        default=None,
        repr=False,
        description="Extra headers on every read of the store, Name=value,Name2=value2 or a "
        "JSON object (e.g. X-Scope-OrgID=team-a for Mimir); values may be secrets",
    )
    remote_write_url: str | None = Field(
        default=None,
        description="Prometheus remote-write endpoint (e.g. http://vm:8428/api/v1/write) every "
        "ingested point is also sent to, from a durable queue",
    )
    remote_write_bearer_token: str | None = None
    remote_write_username: str | None = None
    remote_write_password: str | None = None
    remote_write_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM) the remote-write endpoint's TLS is checked with"
    )
    remote_write_headers: str | None = Field(
        default=None,
        repr=False,
        description="Extra headers on every remote-write request, Name=value,Name2=value2 or a "
        "JSON object (e.g. X-Scope-OrgID=team-a for Mimir, THANOS-TENANT=team-a for Thanos "
        "Receive); values may be secrets",
    )
    remote_write_queue_mb: float = Field(
        default=256,
        gt=0,
        description="How much encoded data may wait for the store; past it, ingest answers 503 "
        "with Retry-After instead of dropping points",
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("backup_schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        # Refused at start, not discovered at the first backup that never happens.
        if value and not croniter.is_valid(value):
            raise ValueError(f"SHIPBOARD_BACKUP_SCHEDULE {value!r} is not a cron expression")
        return value or None

    @field_validator("prometheus_url")
    @classmethod
    def _valid_prometheus_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"SHIPBOARD_PROMETHEUS_URL {value!r} is not an http(s) URL")
        return value or None

    @field_validator("remote_write_url")
    @classmethod
    def _valid_remote_write_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"SHIPBOARD_REMOTE_WRITE_URL {value!r} is not an http(s) URL")
        return value or None

    @field_validator("prometheus_headers")
    @classmethod
    def _valid_prometheus_headers(cls, value: str | None) -> str | None:
        # Refused at start: a bad header would otherwise fail every query, or be smuggled in.
        extraheaders.parse(
            value, setting="SHIPBOARD_PROMETHEUS_HEADERS", prefix="SHIPBOARD_PROMETHEUS"
        )
        return value or None

    @field_validator("remote_write_headers")
    @classmethod
    def _valid_remote_write_headers(cls, value: str | None) -> str | None:
        extraheaders.parse(
            value, setting="SHIPBOARD_REMOTE_WRITE_HEADERS", prefix="SHIPBOARD_REMOTE_WRITE"
        )
        return value or None

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str | None) -> str | None:
        # Refused at start: a wrong one would only show as dead links in someone's inbox.
        return check_public_url(value) if value else None

    @field_validator("outbound_allow")
    @classmethod
    def _valid_outbound_allow(cls, value: str) -> str:
        from shipboard.core.netguard import OutboundPolicy

        OutboundPolicy.parse(value)  # a typo is refused at start, not at the first webhook
        return value

    @model_validator(mode="after")
    def _refuse_missing_key_in_production(self) -> Settings:
        # A key file generated on the fly is fine on a laptop; in production it would
        # silently make every secret unreadable after the next fresh container.
        if self.env == "production" and not self.secret_keys:
            raise ValueError("SHIPBOARD_SECRET_KEYS must be set when SHIPBOARD_ENV=production")
        return self

    def metrics_store(self) -> PromStore | None:
        """A client of SHIPBOARD_PROMETHEUS_URL, or None when it is unset."""
        from shipboard.core.promql import PromStore, StoreSettings

        if not self.prometheus_url:
            return None
        return PromStore(
            StoreSettings(
                url=self.prometheus_url,
                bearer_token=self.prometheus_bearer_token,
                username=self.prometheus_username,
                password=self.prometheus_password,
                ca_file=self.prometheus_ca_file,
                headers=self.extra_headers("prometheus"),
            )
        )

    def extra_headers(
        self, store: Literal["prometheus", "remote_write"]
    ) -> tuple[tuple[str, str], ...]:
        """SHIPBOARD_PROMETHEUS_HEADERS or SHIPBOARD_REMOTE_WRITE_HEADERS, parsed (they were
        checked when the settings were read)."""
        prefix = f"SHIPBOARD_{store.upper()}"
        text = self.prometheus_headers if store == "prometheus" else self.remote_write_headers
        return extraheaders.parse(text, setting=f"{prefix}_HEADERS", prefix=prefix)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.home / 'shipboard.db').resolve()}"

    @property
    def outbound_policy(self) -> OutboundPolicy:
        """What requests to stored URLs (webhooks, healthchecks, scrape targets) may reach."""
        from shipboard.core.netguard import OutboundPolicy

        return OutboundPolicy.parse(self.outbound_allow)

    @property
    def effective_public_url(self) -> str:
        return self.public_url or DEFAULT_PUBLIC_URL

    @property
    def effective_backup_dir(self) -> Path:
        return (self.backup_dir or self.home / "backups").expanduser()

    @property
    def scan_protected(self) -> tuple[Path, ...]:
        """What no scanner may read, whatever SHIPBOARD_SCAN_ROOTS allow: the home (key file,
        sessions), the backups and a SQLite database with its journals."""
        from shipboard.core.crypto import KEY_FILE_NAME

        paths = [self.home, self.home / KEY_FILE_NAME, self.effective_backup_dir]
        url = self.effective_database_url
        if url.startswith("sqlite:///"):
            database = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
            paths += [
                database.with_name(database.name + s) for s in ("", "-wal", "-shm", "-journal")
            ]
        return tuple(paths)


DEFAULT_PUBLIC_URL = "http://localhost:8000"


def check_public_url(value: str) -> str:
    """An absolute http(s) URL with a host and no query or fragment, without its trailing
    slash (links are made by appending a path: ``/alerts/<id>``)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"SHIPBOARD_PUBLIC_URL {value!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"SHIPBOARD_PUBLIC_URL {value!r} must be an http:// or https:// URL with a host"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"SHIPBOARD_PUBLIC_URL {value!r} may not hold credentials, a query or a fragment"
        )
    return value.strip().rstrip("/")


SUPPORTED_DATABASES = (
    "PostgreSQL (postgresql://USER:PASSWORD@HOST:5432/DATABASE) or SQLite "
    "(sqlite:////absolute/path/shipboard.db; unset for ~/.shipboard/shipboard.db)"
)
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite", "sqlite+pysqlite")


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (``postgres://``, ``postgresql://``) and pick psycopg 3;
    refuse (InvalidInput) any other database, naming the ones Shipboard runs on."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        shown = f"{scheme!r}" if scheme else "a URL without a scheme"
        raise InvalidInput(
            f"SHIPBOARD_DATABASE_URL names {shown}, which Shipboard does not support; "
            f"use {SUPPORTED_DATABASES}"
        )
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
