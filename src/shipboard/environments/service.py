"""Environments: read (with credentials redacted for non-admins) and seed."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session

from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.time import utcnow
from shipboard.core.types import ENVIRONMENTS
from shipboard.environments import repository
from shipboard.environments.models import Environment
from shipboard.environments.schemas import EnvironmentRead

# The spec's seed domains.
DEFAULT_DOMAINS = {
    "development": "dev.legacyguard.app",
    "staging": "staging.legacyguard.app",
    "production": "legacyguard.cz",
}
DEFAULT_CONFIG: dict[str, Any] = {"api_rate_limit": 600, "max_file_size_mb": 50}
DEFAULT_FEATURES: dict[str, dict[str, bool]] = {
    "development": {},
    "staging": {},
    "production": {"require_staging_success": True, "block_on_critical_findings": True},
}

REDACTED = "***"
_CREDENTIAL_KEY = re.compile(r"(_api_key|_secret|password|_token)$", re.IGNORECASE)


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """Hide values that grant access: keys named like credentials and passwords inside URLs."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if _CREDENTIAL_KEY.search(key) and value not in (None, ""):
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = _redact_url_password(value)
        elif isinstance(value, dict):
            out[key] = redact_config(value)
        else:
            out[key] = value
    return out


def _redact_url_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{netloc[1]}"))
    except ValueError:
        return value


def to_read(environment: Environment, *, reveal_credentials: bool) -> EnvironmentRead:
    config = environment.config or {}
    return EnvironmentRead(
        name=environment.name,
        domain=environment.domain,
        config=config if reveal_credentials else redact_config(config),
        secrets=sorted((environment.secrets or {}).keys()),
        features=environment.features or {},
        limits=environment.limits or {},
        created_at=environment.created_at,
        updated_at=environment.updated_at,
    )


def list_environments(session: Session, *, reveal_credentials: bool) -> list[EnvironmentRead]:
    """Every environment, in promotion order (development, staging, production, then others)."""
    rank: dict[str, int] = {name: i for i, name in enumerate(ENVIRONMENTS)}
    rows = sorted(repository.list_all(session), key=lambda e: (rank.get(e.name, len(rank)), e.name))
    return [to_read(e, reveal_credentials=reveal_credentials) for e in rows]


def get_environment(session: Session, *, name: str, reveal_credentials: bool) -> EnvironmentRead:
    """One environment by name, or NotFound."""
    environment = repository.get(session, name)
    if environment is None:
        raise NotFound(f"environment {name!r} does not exist")
    return to_read(environment, reveal_credentials=reveal_credentials)


def require_environment(session: Session, name: str) -> Environment:
    environment = repository.get(session, name)
    if environment is None:
        raise NotFound(f"environment {name!r} does not exist")
    return environment


def seed_environments(session: Session, *, domains: dict[str, str] | None = None) -> list[str]:
    """Create the three environments that do not exist yet; return the names created."""
    domains = {**DEFAULT_DOMAINS, **(domains or {})}
    existing = repository.names(session)
    created: list[str] = []
    for name in ENVIRONMENTS:
        if name in existing:
            continue
        now = utcnow()
        repository.add(
            session,
            Environment(
                name=name,
                domain=domains[name],
                config=dict(DEFAULT_CONFIG),
                secrets={},
                features=dict(DEFAULT_FEATURES[name]),
                limits={},
                created_at=now,
                updated_at=now,
            ),
        )
        created.append(name)
    return created


def require_known_environments(session: Session, *, field: str, names: list[str]) -> None:
    """Reject a batch (naming each offending index) if any item names an unknown environment."""
    known = repository.names(session)
    errors = [
        {"loc": ["body", field, i, "environment"], "msg": f"unknown environment {name!r}"}
        for i, name in enumerate(names)
        if name not in known
    ]
    if errors:
        raise InvalidInput("batch refers to an unknown environment", errors=errors)
