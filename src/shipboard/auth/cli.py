"""`shipboard users …` and `shipboard tokens …`: run directly against the database."""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from shipboard.audit.service import AuditContext
from shipboard.auth import service
from shipboard.auth.schemas import UserCreate
from shipboard.config import get_settings
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console
from shipboard.core.time import parse_duration
from shipboard.core.types import ROLES, Role
from shipboard.db.engine import create_db_engine, system_transaction

users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
out = console()
T = TypeVar("T")


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


def in_session(fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in one system transaction on the configured database (committed if it returns)."""
    with _session() as session:
        return fn(session)


@users_app.command("create")
def create_user(
    name: str,
    role: Annotated[Role, typer.Option(help=", ".join(ROLES[:-1]) + " or " + ROLES[-1])],
    as_json: JsonFlag = False,
) -> None:
    """Create a user and print its first API token (shown once)."""
    try:
        data = UserCreate(name=name, role=role)
    except ValueError as exc:
        raise InvalidInput(f"invalid user name {name!r}: letters, digits and . _ @ - only") from exc
    created = in_session(
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
    users = in_session(service.list_users)
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
    user = in_session(
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
    in_session(
        lambda s: sessions.set_password(
            s, name=name, password=password, audit_context=cli_audit_context()
        )
    )
    out.print(f"password set for {name}; sign in at /login")


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
    issued = in_session(
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
    info = in_session(
        lambda s: service.revoke_token(s, token_id=token_id, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(info.model_dump(mode="json")))
        return
    out.print(f"revoked token {info.id}")
