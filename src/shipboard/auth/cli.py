"""`shipboard users …` and `shipboard tokens …`: run directly against the database."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from shipboard.audit.service import AuditContext
from shipboard.auth import service
from shipboard.auth.schemas import UserCreate
from shipboard.config import get_settings
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import console
from shipboard.core.time import parse_duration
from shipboard.core.types import Role
from shipboard.db.engine import create_db_engine, system_transaction

users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
out = console()
T = TypeVar("T")

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on standard output, for scripts.")
]


@contextmanager
def _session() -> Iterator[Session]:
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        with system_transaction(engine) as session:
            yield session
    finally:
        engine.dispose()


def cli_audit_context() -> AuditContext:
    """Operator commands are audited under the operating-system user that ran them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return AuditContext(actor=f"cli:{user}", actor_role="admin")


def _in_session(fn: Callable[[Session], T]) -> T:
    with _session() as session:
        return fn(session)


@users_app.command("create")
def create_user(
    name: str,
    role: Annotated[Role, typer.Option(help="viewer, deployer, service or admin")],
    as_json: JsonFlag = False,
) -> None:
    """Create a user and print its first API token (shown once)."""
    try:
        data = UserCreate(name=name, role=role)
    except ValueError as exc:
        raise InvalidInput(f"invalid user name {name!r}: letters, digits and . _ @ - only") from exc
    created = _in_session(
        lambda s: service.create_user(s, data=data, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(created.model_dump(mode="json")))
        return
    out.print(f"created user {created.user.name} ({created.user.role})")
    out.print("API token (shown once, keep it safe):")
    print(created.token)


@users_app.command("list")
def list_users(as_json: JsonFlag = False) -> None:
    """List users."""
    users = _in_session(service.list_users)
    if as_json:
        print(json.dumps([u.model_dump(mode="json") for u in users]))
        return
    table = Table("name", "role", "disabled", "created")
    for u in users:
        table.add_row(
            u.name, u.role, "yes" if u.disabled else "", u.created_at.isoformat(timespec="seconds")
        )
    out.print(table)


@users_app.command("disable")
def disable_user(name: str, as_json: JsonFlag = False) -> None:
    """Disable a user; its tokens stop working at once."""
    user = _in_session(
        lambda s: service.disable_user(s, name=name, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(user.model_dump(mode="json")))
        return
    out.print(f"disabled user {user.name}")


@users_app.command("set-password")
def set_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Set USER's web sign-in password (asked twice, or read from stdin); ends their sessions."""
    import sys

    from shipboard.auth import sessions

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise InvalidInput("the passwords differ")
    _in_session(
        lambda s: sessions.set_password(
            s, name=name, password=password, audit_context=cli_audit_context()
        )
    )
    out.print(f"password set for {name}; sign in at /login")


@users_app.command("export")
def export_user(
    name: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (mode 0600), not stdout")
    ] = None,
) -> None:
    """Everything Shipboard holds about USER, as JSON (for a data subject's access request)."""
    from shipboard.ops.privacy import export_user as export

    data = _in_session(lambda s: export(s, name=name))
    text = json.dumps(data, indent=2, sort_keys=True)
    if output is None:
        print(text)
        return
    # It is personal data: readable by the operator only, like the key file.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    out.print(f"wrote {output}")


@users_app.command("erase")
def erase_user(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pseudonymize USER everywhere, disable the account, delete its credentials (irreversible)."""
    from shipboard.core.crypto import Keyring
    from shipboard.ops.privacy import erase_user as erase

    if not yes and not typer.confirm(
        f"Replace {name!r} by a pseudonym in every row and disable the account? "
        "This cannot be undone"
    ):
        raise typer.Exit(1)
    settings = get_settings()
    keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    done = _in_session(
        lambda s: erase(s, name=name, keyring=keyring, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(dataclasses.asdict(done)))
        return
    rows = sum(done.rewritten.values())
    out.print(f"erased: now {done.pseudonym} in {rows} row(s) of {len(done.rewritten)} table(s)")
    out.print(f"deleted {done.tokens_deleted} token(s) and {done.sessions_deleted} session(s)")


@tokens_app.command("create")
def create_token(
    user: str,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime such as 30d, 12h or 2w; default never"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the token is for")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue a new API token for USER (shown once)."""
    try:
        lifetime = parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    issued = _in_session(
        lambda s: service.create_token(
            s,
            user_name=user,
            expires_in=lifetime,
            description=description,
            audit_context=cli_audit_context(),
        )
    )
    if as_json:
        print(json.dumps(issued.model_dump(mode="json")))
        return
    expiry = (
        issued.info.expires_at.isoformat(timespec="seconds") if issued.info.expires_at else "never"
    )
    out.print(f"token {issued.info.id} for {user}, expires {expiry} (shown once):")
    print(issued.token)


@tokens_app.command("revoke")
def revoke_token(token_id: uuid.UUID, as_json: JsonFlag = False) -> None:
    """Revoke the token with id TOKEN_ID."""
    info = _in_session(
        lambda s: service.revoke_token(s, token_id=token_id, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(info.model_dump(mode="json")))
        return
    out.print(f"revoked token {info.id}")
