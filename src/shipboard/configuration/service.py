"""Configuration as code: the live configuration as one document, its diff against a desired
document, and applying that diff in the caller's one transaction (all or nothing).

Every object goes through its own domain's write schema and service, so a file is checked by
exactly the validation the API applies, and an applied object is indistinguishable from one
made through the API. The parts' audit events are gathered into one ``config.apply`` event that
records the diff (credentials shown as changed, never by value).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from shipboard.alerting import service as alert_service
from shipboard.alerting.schemas import AlertRuleCreate
from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.configuration import credentials
from shipboard.configuration.schemas import (
    ConfigApplied,
    ConfigDiff,
    ConfigDocument,
    EnvironmentSpec,
    FieldChange,
    LiveConfig,
    ObjectChange,
)
from shipboard.configuration.source import Path, format_path
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Conflict, InvalidInput, ShipboardError
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy
from shipboard.environments import repository as environments_repository
from shipboard.environments import service as environments
from shipboard.environments.merge_patch import merge_patch_between
from shipboard.environments.models import Environment
from shipboard.environments.validation import stored_mapping
from shipboard.integrations import service as integrations
from shipboard.integrations.schemas import IntegrationWrite
from shipboard.notifications import service as notifications
from shipboard.notifications.schemas import ChannelCreate

# (section in the document, kind in a change) in the order objects are created: channels
# before the rules that name them; deletions run in the reverse order.
SECTIONS = (
    ("channels", "channel"),
    ("environments", "environment"),
    ("integrations", "integration"),
    ("alert_rules", "alert_rule"),
)
PRUNABLE = ("alert_rule", "channel")

# A canonical state: kind -> name -> the object's canonical JSON (credentials in the clear).
State = dict[str, dict[str, dict[str, Any]]]


# --- canonical forms -------------------------------------------------------------------------


def _environment(spec: EnvironmentSpec) -> dict[str, Any]:
    return {
        "domain": spec.domain,
        "config": spec.config.model_dump(mode="json", exclude_none=True, exclude_unset=True),
        "features": dict(sorted(spec.features.items())),
        "limits": spec.limits.model_dump(mode="json", exclude_none=True),
    }


def _rule(rule: AlertRuleCreate) -> dict[str, Any]:
    # Only the keys the rule's kind uses: `method` means nothing to a threshold rule.
    canonical: dict[str, Any] = json.loads(
        json.dumps(
            {
                "kind": rule.kind,
                "environment": rule.environment,
                **({"metric": rule.metric} if rule.metric is not None else {}),
                "severity": rule.severity,
                "labels": rule.labels,
                "annotations": rule.annotations,
                "channels": rule.channels,
                "enabled": rule.enabled,
                **rule.spec(),
            }
        )
    )
    return canonical


def _channel(channel: ChannelCreate) -> dict[str, Any]:
    return channel.model_dump(mode="json", exclude={"name"})


def _integration(integration: IntegrationWrite) -> dict[str, Any]:
    return integration.model_dump(mode="json")


def desired_state(document: ConfigDocument) -> State:
    """The document's objects in canonical form."""
    return {
        "environment": {n: _environment(e) for n, e in document.environments.items()},
        "alert_rule": {r.name: _rule(r) for r in document.alert_rules},
        "channel": {c.name: _channel(c) for c in document.channels},
        "integration": {k: _integration(i) for k, i in document.integrations.items()},
    }


def live_state(session: Session, *, keyring: Keyring) -> State:
    """What is stored now, in the same canonical form (credentials decrypted)."""
    state: State = {"environment": {}, "alert_rule": {}, "channel": {}, "integration": {}}
    for env in environments_repository.list_all(session):
        raw = _stored(env, keyring=keyring)
        try:
            state["environment"][env.name] = _environment(EnvironmentSpec.model_validate(raw))
        except ValidationError:
            # Stored by an older version or by hand: compared as stored, so apply replaces it.
            state["environment"][env.name] = raw
    for rule in alert_service.rule_specs(session):
        try:
            state["alert_rule"][rule.name] = _rule(rule)
        except (TypeError, ValueError, AttributeError):
            state["alert_rule"][rule.name] = {"unreadable": True}
    for channel in notifications.channel_specs(session, keyring=keyring):
        state["channel"][channel.name] = _channel(channel)
    for kind, integration in integrations.integration_specs(session, keyring=keyring).items():
        state["integration"][kind] = _integration(integration)
    return state


def _stored(env: Environment, *, keyring: Keyring) -> dict[str, Any]:
    return {
        "domain": env.domain,
        # Credentials decrypted: compared with the file's values, not with their ciphertext.
        # A column edited by hand may hold a list or a string: read as empty, so apply replaces it.
        "config": environments.plaintext_config(env, keyring=keyring),
        "features": stored_mapping(env.features),
        "limits": stored_mapping(env.limits),
    }


def revision(state: State) -> str:
    """A short digest of a state: equal states, equal revisions."""
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_document(data: dict[str, Any]) -> ConfigDocument:
    """Validate a document; every problem is reported with its path under ``document``."""
    try:
        return ConfigDocument.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": ["document", *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)
        ]
        first = errors[0]
        raise InvalidInput(
            f"{format_path(tuple(first['loc'][1:]))}: {first['msg']}"
            if len(first["loc"]) > 1
            else str(first["msg"]),
            errors=errors,
        ) from exc


# --- export ----------------------------------------------------------------------------------


def export(session: Session, *, keyring: Keyring) -> LiveConfig:
    """The live configuration as a document, credentials replaced by `${VAR}` references."""
    state = live_state(session, keyring=keyring)
    variables: list[str] = []
    document: dict[str, Any] = {"version": 1}
    for section, kind in (
        ("environments", "environment"),
        ("integrations", "integration"),
        ("channels", "channel"),
        ("alert_rules", "alert_rule"),
    ):
        objects = state[kind]
        if not objects:
            continue
        referenced = {
            name: _references(obj, (section, name), variables) for name, obj in objects.items()
        }
        if section in ("channels", "alert_rules"):
            document[section] = [{"name": name, **obj} for name, obj in referenced.items()]
        else:
            document[section] = referenced
    return LiveConfig(revision=revision(state), document=document, variables=variables)


def _references(value: Any, path: Path, variables: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _references(v, (*path, k), variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_references(v, (*path, i), variables) for i, v in enumerate(value)]
    if isinstance(value, str):
        if credentials.is_credential(path, value):
            name = credentials.variable_name(path)
            variables.append(name)
            return f"${{{name}}}"
        # A literal `${` in a value must survive the round trip through `resolve`.
        return value.replace("${", "$${")
    return value


# --- diff ------------------------------------------------------------------------------------


def diff_states(desired: State, live: State, *, prune: bool) -> list[ObjectChange]:
    """Object by object and field by field, what applying ``desired`` would change."""
    changes: list[ObjectChange] = []
    for _, kind in SECTIONS:
        want, have = desired[kind], live[kind]
        for name in sorted(want):
            if name not in have:
                changes.append(
                    ObjectChange(
                        kind=kind, name=name, action="create", fields=_fields(None, want[name])
                    )
                )
            elif want[name] != have[name]:
                changes.append(
                    ObjectChange(
                        kind=kind,
                        name=name,
                        action="update",
                        fields=_fields(have[name], want[name]),
                    )
                )
        for name in sorted(set(have) - set(want)):
            if kind == "environment":
                continue  # an environment the file does not name is simply not managed by it
            action = "delete" if prune and kind in PRUNABLE else "unmanaged"
            changes.append(ObjectChange(kind=kind, name=name, action=action))
    return changes


def _flatten(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    if isinstance(value, dict) and value:
        out: dict[Path, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, (*prefix, k)))
        return out
    return {prefix: value}


def _fields(before: dict[str, Any] | None, after: dict[str, Any]) -> list[FieldChange]:
    old, new = _flatten(before or {}), _flatten(after)
    out: list[FieldChange] = []
    for path in sorted(set(old) | set(new), key=lambda p: [str(x) for x in p]):
        if path == ():
            continue
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        secret = credentials.is_credential(path, a) or credentials.is_credential(path, b)
        out.append(
            FieldChange(
                path=format_path(path),
                before=credentials.MASK if secret and a is not None else a,
                after=credentials.MASK if secret and b is not None else b,
            )
        )
    return out


def diff(session: Session, *, data: dict[str, Any], keyring: Keyring, prune: bool) -> ConfigDiff:
    """What applying the document would change; nothing is written."""
    document = parse_document(data)
    live = live_state(session, keyring=keyring)
    changes = diff_states(desired_state(document), live, prune=prune)
    return ConfigDiff(
        revision=revision(live),
        changed=any(c.action != "unmanaged" for c in changes),
        changes=changes,
    )


# --- apply -----------------------------------------------------------------------------------


def apply(
    session: Session,
    *,
    data: dict[str, Any],
    keyring: Keyring,
    audit_context: AuditContext,
    prune: bool = False,
    dry_run: bool = False,
    expect_revision: str | None = None,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    store_configured: bool = False,
) -> ConfigApplied:
    """Make the live configuration what the document says, in the caller's transaction.

    Any refusal raises, and the caller's transaction rolls back: nothing is half-applied."""
    document = parse_document(data)
    live = live_state(session, keyring=keyring)
    before = revision(live)
    if expect_revision is not None and expect_revision != before:
        raise Conflict(
            f"the configuration changed since revision {expect_revision} (it is now at "
            f"{before}): run diff again"
        )
    changes = diff_states(desired_state(document), live, prune=prune)
    changed = any(c.action != "unmanaged" for c in changes)
    if dry_run or not changed:
        return ConfigApplied(
            revision=before, changed=changed, changes=changes, applied=False, new_revision=before
        )
    parts = dataclasses.replace(audit_context, collected=[])
    todo: dict[tuple[str, str], str] = {(c.kind, c.name): c.action for c in changes}
    # Rules go first when deleted, so a pruned channel is no longer named by a pruned rule.
    for kind in ("alert_rule", "channel"):
        for name in sorted(n for (k, n), a in todo.items() if k == kind and a == "delete"):
            if kind == "alert_rule":
                alert_service.delete_rule_named(session, name=name, audit_context=parts)
            else:
                notifications.delete_channel_named(session, name=name, audit_context=parts)
    for section, kind in SECTIONS:
        for name in sorted(n for (k, n), a in todo.items() if k == kind and a != "delete"):
            if todo[(kind, name)] == "unmanaged":
                continue
            with _at(_document_path(document, section, name)):
                _write(
                    session,
                    document,
                    kind=kind,
                    name=name,
                    create=todo[(kind, name)] == "create",
                    keyring=keyring,
                    audit_context=parts,
                    outbound=outbound,
                    store_configured=store_configured,
                )
    session.flush()
    after = revision(live_state(session, keyring=keyring))
    audit.record(
        session,
        context=audit_context,
        action="config.apply",
        target_type="config",
        target_id=after,
        details={
            "revision_before": before,
            "revision_after": after,
            "prune": prune,
            "changes": [c.model_dump(mode="json") for c in changes if c.action != "unmanaged"],
            "parts": parts.collected,
        },
    )
    return ConfigApplied(
        revision=before, changed=True, changes=changes, applied=True, new_revision=after
    )


def _write(
    session: Session,
    document: ConfigDocument,
    *,
    kind: str,
    name: str,
    create: bool,
    keyring: Keyring,
    audit_context: AuditContext,
    outbound: OutboundPolicy,
    store_configured: bool,
) -> None:
    if kind == "channel":
        channel = next(c for c in document.channels if c.name == name)
        write = notifications.create_channel if create else notifications.update_channel
        write(
            session, data=channel, keyring=keyring, audit_context=audit_context, outbound=outbound
        )
    elif kind == "environment":
        # Through PATCH, so the file is held to exactly the checks a PATCH is: the patch turns
        # what is stored into what the file says (keys it does not name are removed).
        stored = _stored(environments.require_environment(session, name), keyring=keyring)
        wanted = _environment(document.environments[name])  # type: ignore[index]
        environments.patch_environment(
            session,
            name=name,
            patch=merge_patch_between(stored, wanted),
            keyring=keyring,
            audit_context=audit_context,
            outbound=outbound,
            store_configured=store_configured,
        )
    elif kind == "integration":
        integrations.put_integration(
            session,
            kind=name,
            data=document.integrations[name],  # type: ignore[index]
            keyring=keyring,
            audit_context=audit_context,
        )
    else:
        rule = next(r for r in document.alert_rules if r.name == name)
        write_rule = alert_service.create_rule if create else alert_service.update_rule
        write_rule(
            session, data=rule, audit_context=audit_context, store_configured=store_configured
        )


def _document_path(document: ConfigDocument, section: str, name: str) -> Path:
    if section == "channels":
        return (section, next(i for i, c in enumerate(document.channels) if c.name == name))
    if section == "alert_rules":
        return (section, next(i for i, r in enumerate(document.alert_rules) if r.name == name))
    return (section, name)


@contextmanager
def _at(path: Path) -> Iterator[None]:
    """A refusal from a domain service names the place in the document it came from."""
    try:
        yield
    except ShipboardError as exc:
        errors = [
            {
                "loc": ["document", *path, *[p for p in e.get("loc", []) if p != "body"]],
                "msg": e.get("msg", exc.detail),
            }
            for e in (exc.errors or [{"loc": [], "msg": exc.detail}])
        ]
        raise type(exc)(
            f"{format_path(path)}: {exc.detail}", errors=errors, headers=exc.headers
        ) from exc
