"""The ``shipboard`` command run as a user runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.live import Clients


def shipboard(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``shipboard ARGS`` with ``env`` over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shipboard_as(
    clients: Clients, role: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``shipboard ARGS`` against the live server of ``clients``, with the token of ``role``."""
    return shipboard(
        *args,
        env={"SHIPBOARD_URL": clients.server.base_url, "SHIPBOARD_TOKEN": clients.tokens[role]},
        stdin=stdin,
    )
