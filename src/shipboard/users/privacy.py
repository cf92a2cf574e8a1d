"""Personal data of one user: export everything that refers to them, or erase their name.

A user's name is written into many rows as plain text: as whole values (``triggered_by``,
``approved_by``, an audit event's ``actor``, a silence's ``created_by``) and inside free text and
JSON (log lines such as "approved by alice", error messages, audit details, notification
payloads). Rather than a list of columns that the next feature would make incomplete, both
operations look at every text and JSON column of every table, except the ones that hold secrets
or hashes (which never contain a name and must not be touched) and the ones that hold a fixed
vocabulary (roles, statuses, actions) or environment names (foreign keys).

Erasure replaces the name with a pseudonym, ``user-`` and 12 hex digits of HMAC-SHA256 over the
name under a key derived from the primary secret key: the same name always gives the same
pseudonym (so rows that belonged together still do, and DORA numbers stay what they were), and
nobody without the key can test a guess. The account is disabled, its password, TOTP secret,
tokens and browser sessions are deleted, and the erasure itself is audited under the pseudonym.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth import repository as users
from shipboard.auth.models import ApiToken, User, WebSession
from shipboard.auth.pseudonyms import pseudonym
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Conflict, InvalidInput, NotFound
from shipboard.core.time import utcnow
from shipboard.core.types import ROLES
from shipboard.db.engine import is_postgres
from shipboard.db.rls import require_unblocked
from shipboard.models import metadata

# Words Shipboard writes itself (roles, system actors, the `cli:` prefix of operators, the
# `user` target type and pseudonym prefix): erasing one would rewrite them all.
RESERVED_NAMES = frozenset(
    {*ROLES, "system", "scheduler", "retention", "anonymous", "unknown", "user", "cli"}
)
# Secrets, hashes and tokens: a name never appears in them, and rewriting one would break it.
SECRET_COLUMNS = frozenset(
    {
        ("users", "password_hash"),
        ("users", "totp_secret"),
        ("api_tokens", "token_hash"),
        ("web_sessions", "id_hash"),
        ("web_sessions", "csrf_token"),
        ("environments", "secrets"),
        ("notification_channels", "secrets"),
        ("integrations", "secret"),
        ("idempotency_keys", "request_hash"),
    }
)
# Environment names are keys other tables point at; a user's name is renamed on its own row
# (and other users' names may contain it).
SKIPPED_COLUMNS = frozenset({("environments", "name"), ("users", "name")})
# Columns, wherever they are, that hold a fixed vocabulary or an environment name.
VOCABULARY = frozenset(
    {
        "action",
        "actor_role",
        "role",
        "status",
        "kind",
        "level",
        "severity",
        "type",
        "target_type",
        "outcome",
        "state",
        "event",
        "scan_type",
        "triage_status",
        "watch_state",
        "direction",
        "environment",
    }
)
AUDIT_TABLE = "audit_events"
PG_TRIGGER = "audit_events_append_only"  # migration 20261126_0003


class Scrubber:
    """Finds and replaces one name in text and JSON, as a word: letters or digits on either side
    make it part of another word ("alice" is not in "malice"), and other users' names that
    contain it ("alice.smith") are left alone."""

    def __init__(self, name: str, replacement: str, *, others: list[str]) -> None:
        self.name = name
        self.replacement = replacement
        protected = sorted((o for o in others if name in o and o != name), key=len, reverse=True)
        alternatives = [f"(?P<other>{'|'.join(map(re.escape, protected))})"] if protected else []
        alternatives.append(f"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])")
        self._pattern = re.compile("|".join(alternatives))

    def text(self, value: str) -> str:
        def swap(match: re.Match[str]) -> str:
            return match.group(0) if match.groupdict().get("other") else self.replacement

        return self._pattern.sub(swap, value)

    def value(self, value: Any) -> Any:
        """``value`` with the name replaced, recursing into JSON (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def mentions(self, value: Any) -> bool:
        return bool(self.value(value) != value)


def scanned_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """The text and JSON columns of ``table`` that may carry a user's name."""
    return [
        column
        for column in table.columns
        if isinstance(column.type, sa.String | sa.JSON)
        and (table.name, column.name) not in SECRET_COLUMNS
        and (table.name, column.name) not in SKIPPED_COLUMNS
        and column.name not in VOCABULARY
    ]


@dataclass(frozen=True)
class Mention:
    table: str
    key: dict[str, Any]
    row: dict[str, Any]
    columns: list[str]


def mentions(session: Session, scrubber: Scrubber) -> Iterator[Mention]:
    """Every row whose scanned columns mention the name, table by table (the audit trail last).

    A LIKE over the text narrows the candidates in the database (a superset: SQLite's LIKE
    ignores case); the word match in Python decides."""
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", scrubber.name) + "%"
    tables = sorted(metadata.sorted_tables, key=lambda t: (t.name == AUDIT_TABLE, t.name))
    for table in tables:
        columns = scanned_columns(table)
        if not columns:
            continue
        likes = [
            (c if isinstance(c.type, sa.String) else sa.cast(c, sa.Text)).like(pattern, escape="\\")
            for c in columns
        ]
        key_columns = list(table.primary_key.columns)
        stmt = sa.select(*table.columns).where(sa.or_(*likes))
        for row in session.execute(stmt).mappings().all():
            hit = [c.name for c in columns if scrubber.mentions(row[c.name])]
            if hit:
                yield Mention(
                    table=table.name,
                    key={c.name: row[c.name] for c in key_columns},
                    row={k: v for k, v in row.items() if (table.name, k) not in SECRET_COLUMNS},
                    columns=hit,
                )


# --- export ---------------------------------------------------------------------------------


def export_user(session: Session, *, name: str) -> dict[str, Any]:
    """Everything that refers to the user ``name``, as JSON-ready data: the account (without
    its password hash or TOTP secret), token and session metadata, the deployments they
    triggered with their log lines, approvals, cancellations, audit events as actor or target,
    triage decisions, silences, scan requests, and every other row that mentions them.

    A name known only from JWTs (no local account) is exported too, without the account."""
    user = users.user_by_name(session, name)
    found: dict[str, list[Mention]] = {}
    for mention in mentions(session, Scrubber(name, "", others=_other_names(session, name))):
        found.setdefault(mention.table, []).append(mention)
    if user is None and not found:
        raise NotFound(f"user {name!r} does not exist and no row mentions that name")

    def rows(table_name: str, condition: Any) -> list[dict[str, Any]]:
        t = metadata.tables[table_name]
        result = session.execute(sa.select(*t.columns).where(condition)).mappings().all()
        return [_public(table_name, dict(r)) for r in result]

    def c(table_name: str, column: str) -> sa.Column[Any]:
        return metadata.tables[table_name].c[column]

    mine = sa.select(c("deployment_configs", "id")).where(
        c("deployment_configs", "triggered_by") == name
    )
    targets = [name] if user is None else [name, str(user.id)]
    log_rows = _merge(
        rows("deployment_logs", c("deployment_logs", "deployment_id").in_(mine)),
        [_public("deployment_logs", m.row) for m in found.pop("deployment_logs", [])],
    )
    audit_rows = _merge(
        rows(
            AUDIT_TABLE,
            sa.or_(c(AUDIT_TABLE, "actor") == name, c(AUDIT_TABLE, "target_id").in_(targets)),
        ),
        [_public(AUDIT_TABLE, m.row) for m in found.pop(AUDIT_TABLE, [])],
    )
    for covered in ("deployment_configs", "deployment_runs", "api_tokens"):
        found.pop(covered, None)
    account: dict[str, Any] | None = None
    if user is not None:
        account = rows("users", c("users", "id") == user.id)[0]
        account["password_set"] = user.password_hash is not None
        account["totp_enabled"] = user.totp_enabled_at is not None
    user_id = user.id if user is not None else None
    export = {
        "exported_at": utcnow().isoformat(),
        "name": name,
        "user": account,
        "api_tokens": rows("api_tokens", c("api_tokens", "user_id") == user_id),
        "web_sessions": rows("web_sessions", c("web_sessions", "user_id") == user_id),
        "deployments": rows("deployment_configs", c("deployment_configs", "triggered_by") == name),
        "deployment_runs": rows("deployment_runs", c("deployment_runs", "deployment_id").in_(mine)),
        "approvals": rows("deployment_runs", c("deployment_runs", "approved_by") == name),
        "cancellations": rows(
            "deployment_runs", c("deployment_runs", "cancel_requested_by") == name
        ),
        "deployment_logs": log_rows,
        "audit_events": sorted(audit_rows, key=lambda r: str(r["occurred_at"])),
        "triage_decisions": rows(
            "finding_identities", c("finding_identities", "triaged_by") == name
        ),
        "silences": rows("silences", c("silences", "created_by") == name),
        "scan_requests": rows("scan_requests", c("scan_requests", "requested_by") == name),
        "mentions": [
            {"table": m.table, "key": m.key, "columns": m.columns, "row": m.row}
            for table_mentions in found.values()
            for m in table_mentions
        ],
    }
    return dict(_jsonable(export))


def _other_names(session: Session, name: str) -> list[str]:
    return list(session.scalars(sa.select(User.name).where(User.name != name)))


def _public(table: str, row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if (table, k) not in SECRET_COLUMNS}


def _merge(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {str(r["id"]) for r in first}
    return first + [r for r in second if str(r["id"]) not in seen]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


# --- erasure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    pseudonym: str
    rewritten: dict[str, int]
    tokens_deleted: int
    sessions_deleted: int


def erase_user(
    session: Session, *, name: str, keyring: Keyring, audit_context: AuditContext
) -> Erasure:
    """Replace ``name`` by its pseudonym in every row, disable the account and delete its
    credentials, tokens and sessions, and audit the erasure — all in the caller's transaction.

    A name known only from JWTs (no local account) has its rows pseudonymized all the same."""
    if name in RESERVED_NAMES:
        raise InvalidInput(
            f"{name!r} is also a word Shipboard writes itself (a role or a system actor); "
            "erasing it would rewrite those too"
        )
    user = users.user_by_name(session, name)
    alias = pseudonym(keyring, name)
    scrubber = Scrubber(name, alias, others=_other_names(session, name))
    found = list(mentions(session, scrubber))
    if user is None and not found:
        raise NotFound(f"user {name!r} does not exist and no row mentions that name")
    if user is not None and users.user_by_name(session, alias) is not None:
        raise Conflict(f"a user named {alias!r} exists already")
    require_unblocked(
        session, tables=sorted({m.table for m in found}), command="UPDATE", what="erasing a user"
    )
    rewritten: dict[str, int] = {}
    _rewrite(session, [m for m in found if m.table != AUDIT_TABLE], scrubber, rewritten)
    trail = [m for m in found if m.table == AUDIT_TABLE]
    if trail:
        with _audit_trail_unlocked(session):
            _rewrite(session, trail, scrubber, rewritten)
    tokens = sessions = 0
    if user is not None:
        tokens = _delete(session, sa.delete(ApiToken).where(ApiToken.user_id == user.id))
        sessions = _delete(session, sa.delete(WebSession).where(WebSession.user_id == user.id))
        session.execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(
                name=alias,
                disabled=True,
                password_hash=None,
                totp_secret=None,
                totp_enabled_at=None,
                totp_last_step=None,
                failed_logins=0,
                locked_until=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        session.expire_all()
    audit.record(
        session,
        # An operator whose own name is erased is recorded under the pseudonym too.
        context=AuditContext(
            actor=scrubber.text(audit_context.actor),
            actor_role=audit_context.actor_role,
            source_ip=audit_context.source_ip,
            request_id=audit_context.request_id,
        ),
        action="user.erase",
        target_type="user",
        target_id=alias,
        details={
            "pseudonym": alias,
            "account": user is not None,
            "rewritten": rewritten,
            "tokens_deleted": tokens,
            "sessions_deleted": sessions,
        },
    )
    session.flush()
    return Erasure(
        pseudonym=alias, rewritten=rewritten, tokens_deleted=tokens, sessions_deleted=sessions
    )


def _rewrite(
    session: Session, found: list[Mention], scrubber: Scrubber, counts: dict[str, int]
) -> None:
    for mention in found:
        table = metadata.tables[mention.table]
        values = {c: scrubber.value(mention.row[c]) for c in mention.columns}
        condition = sa.and_(*(table.c[k] == v for k, v in mention.key.items()))
        session.execute(sa.update(table).where(condition).values(values))
        counts[mention.table] = counts.get(mention.table, 0) + 1


def _delete(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


@contextmanager
def _audit_trail_unlocked(session: Session) -> Iterator[None]:
    """Lift the audit trail's append-only triggers for this transaction only.

    Erasure is the one rewrite the trail allows: the law asks for the name to go, and deleting
    the events instead would break the trail. Both backends change triggers transactionally,
    so no other transaction ever sees the table unguarded: PostgreSQL's ALTER TABLE holds a lock
    that makes other writers of the table wait until the commit, and SQLite has one writer at a
    time anyway. If anything fails, the rollback restores the triggers with the rows."""
    connection = session.connection()
    if is_postgres(session):
        connection.exec_driver_sql(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {PG_TRIGGER}")
        yield
        connection.exec_driver_sql(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {PG_TRIGGER}")
        return
    triggers = connection.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
        {"table": AUDIT_TABLE},
    ).all()
    for trigger_name, _ in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{trigger_name}"')
    yield
    # The triggers come back exactly as the migration wrote them.
    for _, sql in triggers:
        connection.exec_driver_sql(sql)
