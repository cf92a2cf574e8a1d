"""`shipboard deploy --wait`, `logs`, `approve`, `rollback`, `cancel` as a CI job would use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import Clients
from tests.test_pipelines import _set_pipeline, _steps


def _cli(
    clients: Clients, role: str, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": token or clients.tokens[role],
    }
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_wait_streams_lines_and_exits_by_outcome(clients: Clients, worker: Any) -> None:
    with clients.as_role("admin") as admin:
        _set_pipeline(
            admin, "staging", _steps(("ship", "deploy", 'echo "shipping $SHIPBOARD_VERSION"'))
        )
    ok = _cli(
        clients,
        "deployer",
        "deploy",
        "staging",
        "--version",
        "1.2.3",
        "--commit",
        "abcdef1",
        "--wait",
    )
    assert ok.returncode == 0, ok.stderr
    assert "shipping 1.2.3" in ok.stdout
    assert "deployment success" in ok.stdout

    with clients.as_role("admin") as admin:
        _set_pipeline(admin, "staging", _steps(("ship", "deploy", "echo broken >&2; exit 7")))
    bad = _cli(
        clients,
        "deployer",
        "deploy",
        "staging",
        "--version",
        "1.2.4",
        "--commit",
        "abcdef1",
        "--wait",
    )
    assert bad.returncode == 1
    assert "exited with code 7" in bad.stdout
    assert "deployment failed" in bad.stdout


def test_deploy_json_logs_and_blocked_gate_message(clients: Clients) -> None:
    created = _cli(
        clients,
        "deployer",
        "deploy",
        "development",
        "--version",
        "9.9.9",
        "--commit",
        "abcdef1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    did = json.loads(created.stdout)["id"]
    logs = _cli(clients, "viewer", "logs", did)
    assert "created by deployer-user" in logs.stdout
    blocked = _cli(
        clients, "deployer", "deploy", "production", "--version", "9.9.9", "--commit", "abcdef1"
    )
    assert blocked.returncode == 1
    assert "require_staging_success" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_approve_cancel_and_rollback_commands(clients: Clients, make_user: Any) -> None:
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/development/features/require_approval", json={"enabled": True}
        )
    did = json.loads(
        _cli(
            clients,
            "deployer",
            "deploy",
            "development",
            "--version",
            "1.0.0",
            "--commit",
            "abcdef1",
            "--json",
        ).stdout
    )["id"]
    own = _cli(clients, "deployer", "approve", did)
    assert own.returncode == 3  # a 403: the exit code for authentication and permission
    assert "another deployer" in own.stderr
    approver = make_user("cli-approver", "deployer")
    assert _cli(clients, "deployer", "approve", did, token=approver).returncode == 0
    cancelled = _cli(clients, "deployer", "cancel", did)
    assert cancelled.returncode == 0, cancelled.stderr
    nothing = _cli(clients, "deployer", "rollback", "--env", "development")
    assert nothing.returncode == 1
    assert "no successful deployment" in nothing.stderr
    neither = _cli(clients, "deployer", "rollback")
    assert neither.returncode == 2  # usage: nothing was sent
    assert "either a deployment ID or --env" in neither.stderr


# What a hostile step (or a service posting log lines) prints: Rich markup that crashed the CLI
# or became a hyperlink, an OSC 8 hyperlink and a colour change in raw escape sequences, a C1
# control, a bidi override, and a newline forging a second log line.
HOSTILE_STEP = (
    r"printf '%s\n' 'closing [/] tag' '[link=http://x.example]y[/link]' '[bold red]loud[/]';"
    r" printf 'osc \033]8;;http://evil.example/\033\\click\033]8;;\033\\ done\n';"
    r" printf 'csi \033[2J\033[31mred \302\233 c1 \342\200\256 rlo\n';"
    r" printf '%s\n' 'stderr [/] too' '[link=http://x.example]y[/link] on stderr' >&2"
)
FORGED = "fake\n00:00:00.000 shipboard status deploying -> success (admin)"


def _assert_literal(output: str) -> None:
    assert "closing [/] tag" in output
    assert "stderr [/] too" in output
    assert "[link=http://x.example]y[/link]" in output
    assert "[bold red]loud[/]" in output
    # Escapes and other controls are shown, not obeyed: no ESC, C1 or bidi override reaches
    # the terminal, and the forged line stays on the line it came in.
    assert "\x1b" not in output
    assert "\x9b" not in output
    assert "\u202e" not in output
    assert "osc \\x1b]8;;http://evil.example/" in output
    assert "Traceback" not in output


def test_cli_prints_log_text_literally_and_neutralises_controls(
    clients: Clients, worker: Any
) -> None:
    with clients.as_role("admin") as admin:
        _set_pipeline(admin, "staging", _steps(("ship", "deploy", HOSTILE_STEP)))
    waited = _cli(
        clients,
        "deployer",
        "deploy",
        "staging",
        "--version",
        "6.6.6",
        "--commit",
        "abcdef1",
        "--wait",
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr
    _assert_literal(waited.stdout)
    did = waited.stdout.split()[1].rstrip(":")
    with clients.as_role("deployer") as deployer:
        posted = deployer.post(
            f"/api/v1/deployments/{did}/logs",
            json={"logs": [{"message": FORGED, "level": "info", "source": "app"}]},
        )
    assert posted.status_code == 201, posted.text
    shown = _cli(clients, "viewer", "logs", did)
    assert shown.returncode == 0, shown.stderr
    _assert_literal(shown.stdout)
    forged = [line for line in shown.stdout.splitlines() if "fake" in line]
    assert len(forged) == 1
    assert "fake\\n00:00:00.000 shipboard status" in forged[0]
    assert not any(line.startswith("00:00:00.000") for line in shown.stdout.splitlines())


def test_cli_error_messages_are_printed_literally(clients: Clients) -> None:
    """A server's problem detail can quote what was sent: markup in it must not crash the CLI."""
    refused = _cli(clients, "viewer", "env", "show", "[bold]nope")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("error:")
    assert "[bold]nope" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "internal error" not in refused.stderr


def test_every_cli_console_comes_from_core_terminal() -> None:
    """One place makes the CLI's consoles: a Rich Console made anywhere else would read markup
    and pass control characters from server text to the terminal again."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "src" / "shipboard"
    made = re.compile(r"(?<![A-Za-z_])Console\(")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "terminal.py" and made.search(path.read_text())
    ]
    assert offenders == []
