"""``shipboard users export`` and ``users erase``: a data subject's access and erasure requests.

They join the ``users`` group that :mod:`shipboard.auth.cli` defines (accounts, passwords), through
:func:`register`, called by the root command."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from shipboard.auth.cli import cli_audit_context, in_session
from shipboard.config import get_settings
from shipboard.core.crypto import Keyring
from shipboard.core.terminal import JsonFlag, console
from shipboard.users.privacy import erase_user as erase
from shipboard.users.privacy import export_user as export

out = console()


def register(users_app: typer.Typer) -> None:
    """Add ``export`` and ``erase`` to the ``users`` group."""
    users_app.command("export")(export_user)
    users_app.command("erase")(erase_user)


def export_user(
    name: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (mode 0600), not stdout")
    ] = None,
) -> None:
    """Everything Shipboard holds about USER, as JSON (for a data subject's access request)."""
    data = in_session(lambda s: export(s, name=name))
    text = json.dumps(data, indent=2, sort_keys=True)
    if output is None:
        print(text)
        return
    # It is personal data: readable by the operator only, like the key file.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    out.print(f"wrote {output}")


def erase_user(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pseudonymize USER everywhere, disable the account, delete its credentials (irreversible)."""
    if not yes and not typer.confirm(
        f"Replace {name!r} by a pseudonym in every row and disable the account? "
        "This cannot be undone"
    ):
        raise typer.Exit(1)
    settings = get_settings()
    keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    done = in_session(
        lambda s: erase(s, name=name, keyring=keyring, audit_context=cli_audit_context())
    )
    if as_json:
        print(json.dumps(dataclasses.asdict(done)))
        return
    rows = sum(done.rewritten.values())
    out.print(f"erased: now {done.pseudonym} in {rows} row(s) of {len(done.rewritten)} table(s)")
    out.print(f"deleted {done.tokens_deleted} token(s) and {done.sessions_deleted} session(s)")
