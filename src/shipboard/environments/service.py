"""Environments: read (with credentials redacted for non-admins) and seed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.crypto import Keyring
from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy
from shipboard.core.promql import NOT_CONFIGURED
from shipboard.core.redaction import redact
from shipboard.core.sealing import seal, unseal
from shipboard.core.time import utcnow
from shipboard.core.types import ENVIRONMENTS
from shipboard.environments import cache, repository, validation
from shipboard.environments.merge_patch import merge_patch
from shipboard.environments.models import Environment
from shipboard.environments.schemas import (
    EnvironmentRead,
    EnvironmentUpdate,
    SecretRead,
)
from shipboard.environments.validation import stored_mapping

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


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """Hide values that grant access, at any depth (``core.redaction``)."""
    return dict(redact(config))


def store_config(environment: Environment, config: dict[str, Any], *, keyring: Keyring) -> None:
    """Store ``config`` with every value the redaction would hide encrypted (core/sealing.py):
    the ``config`` column holds the redacted document, ``config_secrets`` the ciphertext."""
    environment.config, environment.config_secrets = seal(config, keyring)


def plaintext_config(environment: Environment, *, keyring: Keyring | None) -> dict[str, Any]:
    """The one way to the config's credentials in the clear, for what uses them (the pipeline,
    scrapes, scans, configuration as code) and for admins, who wrote them; never for others."""
    return stored_mapping(unseal(environment.config, environment.config_secrets, keyring))


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_read(
    environment: Environment, *, reveal_credentials: bool, keyring: Keyring | None = None
) -> EnvironmentRead:
    # Stored JSON edited by hand may hold anything; a listing must still answer (what is not the
    # right shape is left out here and named by `shipboard config check` and the deploy gate).
    config = (
        plaintext_config(environment, keyring=keyring)
        if reveal_credentials
        else redact_config(_mapping(environment.config))
    )
    return EnvironmentRead(
        name=environment.name,
        domain=str(environment.domain),
        config=config,
        secrets=sorted(_mapping(environment.secrets).keys()),
        features={
            str(k): v for k, v in _mapping(environment.features).items() if isinstance(v, bool)
        },
        limits=_mapping(environment.limits),
        created_at=environment.created_at,
        updated_at=environment.updated_at,
    )


def ordered_environments(session: Session) -> list[Environment]:
    """Every environment, in promotion order (development, staging, production, then others)."""
    rank: dict[str, int] = {name: i for i, name in enumerate(ENVIRONMENTS)}
    return sorted(repository.list_all(session), key=lambda e: (rank.get(e.name, len(rank)), e.name))


def list_environments(
    session: Session, *, reveal_credentials: bool, keyring: Keyring | None = None
) -> list[EnvironmentRead]:
    """Every environment, in promotion order; ``reveal_credentials`` (admins) decrypts the
    config's credentials with ``keyring``."""
    return [
        to_read(e, reveal_credentials=reveal_credentials, keyring=keyring)
        for e in ordered_environments(session)
    ]


def get_environment(
    session: Session, *, name: str, reveal_credentials: bool, keyring: Keyring | None = None
) -> EnvironmentRead:
    """One environment by name, or NotFound."""
    environment = repository.get(session, name)
    if environment is None:
        raise NotFound(f"environment {name!r} does not exist")
    return to_read(environment, reveal_credentials=reveal_credentials, keyring=keyring)


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
    known = cache.cached(session, "names", lambda: frozenset(repository.names(session)))
    errors = [
        {"loc": ["body", field, i, "environment"], "msg": f"unknown environment {name!r}"}
        for i, name in enumerate(names)
        if name not in known
    ]
    if errors:
        raise InvalidInput("batch refers to an unknown environment", errors=errors)


def replace_environment(
    session: Session,
    *,
    name: str,
    data: EnvironmentUpdate,
    keyring: Keyring,
    audit_context: AuditContext,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    store_configured: bool = False,
) -> EnvironmentRead:
    """PUT: replace domain, config, features and limits (secrets are kept)."""
    environment = require_environment(session, name)
    check_outbound_urls(data.config.model_dump(exclude_none=True), outbound)
    check_metrics_store(
        data.config.model_dump(exclude_none=True, exclude_unset=True),
        stored_mapping(environment.config),
        store_configured=store_configured,
    )
    environment.domain = data.domain
    config = data.config.model_dump(exclude_none=True, exclude_unset=True)
    store_config(environment, config, keyring=keyring)
    environment.features = dict(data.features)
    environment.limits = data.limits.model_dump(exclude_none=True) if data.limits else {}
    environment.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="environment.replace",
        target_type="environment",
        target_id=name,
        details={
            "domain": data.domain,
            "config": redact_config(config),
            "features": environment.features,
            "limits": environment.limits,
        },
    )
    return to_read(environment, reveal_credentials=True, keyring=keyring)


def patch_environment(
    session: Session,
    *,
    name: str,
    patch: dict[str, Any],
    keyring: Keyring,
    audit_context: AuditContext,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    store_configured: bool = False,
) -> EnvironmentRead:
    """PATCH: apply a JSON Merge Patch (RFC 7396) and check the result before storing it."""
    environment = require_environment(session, name)
    current = {
        "domain": environment.domain,
        "config": plaintext_config(environment, keyring=keyring),
        "features": stored_mapping(environment.features),
        "limits": stored_mapping(environment.limits),
    }
    merged = merge_patch(current, patch)
    checked = validation.validate_environment(merged)
    check_outbound_urls(merged["config"], outbound)
    check_metrics_store(
        merged["config"], stored_mapping(environment.config), store_configured=store_configured
    )
    environment.domain = checked.domain
    store_config(environment, merged["config"], keyring=keyring)
    environment.features = dict(checked.features)
    environment.limits = checked.limits.model_dump(exclude_none=True)
    environment.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="environment.patch",
        target_type="environment",
        target_id=name,
        details={"patch": redact_config(patch)},
    )
    return to_read(environment, reveal_credentials=True, keyring=keyring)


def check_metrics_store(
    config: dict[str, Any], stored: dict[str, Any], *, store_configured: bool
) -> None:
    """Refuse new or changed ``promotion_checks`` on a server without a metrics store: each
    would block every deployment. Checks already stored (the store was unset since) may stay,
    so an unrelated change still goes through; their gates say why they block."""
    checks = config.get("promotion_checks")
    if store_configured or not checks or checks == stored.get("promotion_checks"):
        return
    raise InvalidInput(
        f"config.promotion_checks needs a metrics store: {NOT_CONFIGURED}",
        errors=[
            {
                "loc": ["body", "config", "promotion_checks"],
                "msg": f"{NOT_CONFIGURED} on this server",
            }
        ],
    )


def check_outbound_urls(config: dict[str, Any], outbound: OutboundPolicy) -> None:
    """Refuse the config's healthcheck and scrape URLs that the server must not request (link-local,
    cloud metadata, not http/https) before they are stored; names are resolved at request time."""
    urls: list[tuple[list[str | int], Any]] = []
    pipeline = config.get("pipeline")
    if isinstance(pipeline, dict) and isinstance(pipeline.get("healthcheck"), dict):
        urls.append((["pipeline", "healthcheck", "url"], pipeline["healthcheck"].get("url")))
    monitoring = config.get("monitoring")
    scrape = monitoring.get("scrape") if isinstance(monitoring, dict) else None
    if isinstance(scrape, list):
        for i, entry in enumerate(scrape):
            if isinstance(entry, dict):
                urls.append((["monitoring", "scrape", i, "url"], entry.get("url")))
    refused = [
        (loc, reason)
        for loc, url in urls
        if isinstance(url, str) and (reason := outbound.url_refusal(url))
    ]
    if refused:
        raise InvalidInput(
            f"config.{'.'.join(map(str, refused[0][0]))} is refused: {refused[0][1]}",
            errors=[{"loc": ["body", "config", *loc], "msg": reason} for loc, reason in refused],
        )


def set_feature(
    session: Session,
    *,
    name: str,
    flag: str,
    enabled: bool,
    audit_context: AuditContext,
    keyring: Keyring | None = None,
) -> EnvironmentRead:
    """Turn one feature flag on or off."""
    environment = require_environment(session, name)
    environment.features = {**stored_mapping(environment.features), flag: enabled}
    environment.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="environment.feature",
        target_type="environment",
        target_id=name,
        details={"flag": flag, "enabled": enabled},
    )
    return to_read(
        environment, reveal_credentials=audit_context.actor_role == "admin", keyring=keyring
    )


def list_secrets(session: Session, *, name: str) -> list[SecretRead]:
    """Names and last update times of an environment's secrets; never their values."""
    environment = require_environment(session, name)
    return [
        SecretRead(key=key, updated_at=_parse_time(entry.get("updated_at")))
        for key, entry in sorted(stored_mapping(environment.secrets).items())
    ]


def set_secret(
    session: Session,
    *,
    name: str,
    key: str,
    value: str,
    keyring: Keyring,
    audit_context: AuditContext,
) -> SecretRead:
    """Encrypt and store a secret value under KEY (creating or replacing it)."""
    environment = require_environment(session, name)
    now = utcnow()
    existed = key in stored_mapping(environment.secrets)
    environment.secrets = {
        **stored_mapping(environment.secrets),
        key: {"value": keyring.encrypt(value), "updated_at": now.isoformat()},
    }
    environment.updated_at = now
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="secret.update" if existed else "secret.create",
        target_type="environment",
        target_id=name,
        details={"key": key},
    )
    return SecretRead(key=key, updated_at=now)


def delete_secret(session: Session, *, name: str, key: str, audit_context: AuditContext) -> None:
    """Remove a secret; NotFound if there is none under KEY."""
    environment = require_environment(session, name)
    secrets = dict(stored_mapping(environment.secrets))
    if key not in secrets:
        raise NotFound(f"environment {name!r} has no secret {key!r}")
    del secrets[key]
    environment.secrets = secrets
    environment.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="secret.delete",
        target_type="environment",
        target_id=name,
        details={"key": key},
    )


def decrypted_secrets(session: Session, *, name: str, keyring: Keyring) -> dict[str, str]:
    """Plaintext secrets of an environment, for the pipeline runner only; never for responses."""
    environment = require_environment(session, name)
    return {k: keyring.decrypt(v["value"]) for k, v in stored_mapping(environment.secrets).items()}


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def rate_limit_per_minute(session: Session, *, name: str) -> int | None:
    """The environment's ``limits.api_rate_limit`` (requests a minute), if it sets one."""

    def load() -> int | None:
        environment = repository.get(session, name)
        if environment is None:
            return None
        value = stored_mapping(environment.limits).get("api_rate_limit")
        return int(value) if isinstance(value, int) and value > 0 else None

    return cache.cached(session, ("api_rate_limit", name), load)


def max_upload_bytes(session: Session, *, name: str) -> int | None:
    """The environment's ``config.max_file_size_mb`` in bytes, if it sets one."""
    environment = repository.get(session, name)
    if environment is None:
        return None
    value = stored_mapping(environment.config).get("max_file_size_mb")
    return int(value * 1024 * 1024) if isinstance(value, int | float) and value > 0 else None
