"""`shipboard secrets …`: key management, run on the server's machine."""

from __future__ import annotations

import typer

from shipboard.core.crypto import generate_key

secrets_app = typer.Typer(help="Encryption keys for secret values.", no_args_is_help=True)


@secrets_app.command("generate-key")
def generate() -> None:
    """Print a new Fernet key for SHIPBOARD_SECRET_KEYS."""
    print(generate_key())
