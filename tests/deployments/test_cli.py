"""`shipboard deploy --wait`, `logs`, `approve`, `rollback`, `cancel` as a CI job would use them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from typing import Any

from tests.support.factories import pipeline_steps, set_pipeline
from tests.support.live import Clients
from tests.support.paths import DOCS, SRC


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
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(("ship", "deploy", 'echo "shipping $SHIPBOARD_VERSION"')),
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
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "echo broken >&2; exit 7"))
        )
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
        set_pipeline(admin, "staging", pipeline_steps(("ship", "deploy", HOSTILE_STEP)))
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
    import re

    root = SRC
    made = re.compile(r"(?<![A-Za-z_])Console\(")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "terminal.py" and made.search(path.read_text())
    ]
    assert offenders == []


class _DroppingProxy:
    """A TCP proxy in front of the test server that goes away, like a server restarting, right
    after it has relayed the log stream's final `end` event: every later connection is refused."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.ended = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.ended.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.ended.is_set():
                conn.close()
                break
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [conn, upstream]
            threading.Thread(target=self._pipe, args=(conn, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, True), daemon=True).start()
        self.listener.close()

    def _pipe(self, source: socket.socket, target: socket.socket, watch: bool) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                target.sendall(data)
                tail = (tail + data)[-4096:]
                if watch and b"event: end" in tail:
                    self.ended.set()
                    self.listener.close()  # new connections are refused from now on
                    break
        except OSError:
            pass
        # Gone: this connection, and the idle keep-alive ones a client would reuse.
        for sock in [source, target, *(self.sockets if self.ended.is_set() else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def test_deploy_wait_exits_by_the_streamed_status_when_the_server_goes_away_at_the_end(
    clients: Clients, worker: Any
) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline_steps(("ship", "deploy", "echo shipped")))
    proxy = _DroppingProxy(clients.server.port)
    env = {
        **os.environ,
        "SHIPBOARD_URL": proxy.url,
        "SHIPBOARD_TOKEN": clients.tokens["deployer"],
        "SHIPBOARD_RETRIES": "1",
    }
    args = ["deploy", "staging", "--version", "3.1.4", "--commit", "abcdef1", "--wait"]
    done = subprocess.run(
        [sys.executable, "-m", "shipboard", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proxy.ended.is_set()
    # The stream said success; the server being gone a moment later changes nothing.
    assert done.returncode == 0, done.stderr
    assert "deployment success" in done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "success"
    assert document["version"] == "3.1.4"


def _json_options() -> dict[str, str]:
    """Every command's --json help text, by command path (``deploy``, ``env show`` …)."""
    import typer.main

    from shipboard.cli import app

    found: dict[str, str] = {}

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if "--json" in getattr(param, "opts", []):
                found[path] = getattr(param, "help", None) or ""
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def test_json_help_docs_and_output_agree(clients: Clients) -> None:
    options = _json_options()
    assert len(options) > 20, options
    lines = {path for path, text in options.items() if "one json object per line" in text.lower()}
    assert lines == {"logs"}, options
    one = {path for path, text in options.items() if "one JSON document" in text}
    assert one == set(options) - lines, {p: t for p, t in options.items() if p not in one}
    ci = " ".join((DOCS / "ci.md").read_text().split())
    assert "`logs --json` prints one JSON object per line" in ci
    # What the help says is what they print.
    created = _cli(
        clients,
        "deployer",
        "deploy",
        "development",
        "--version",
        "4.4.4",
        "--commit",
        "abcdef1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    did = json.loads(created.stdout)["id"]
    logs = _cli(clients, "viewer", "logs", did, "--json")
    assert logs.returncode == 0, logs.stderr
    rows = [json.loads(line) for line in logs.stdout.splitlines()]
    assert rows
    assert all(row["deployment_id"] == did for row in rows)
    shown = _cli(clients, "viewer", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    json.loads(shown.stdout)


def test_names_from_the_command_line_stay_one_path_segment(clients: Clients) -> None:
    # A control character is a usage error, not an internal one; a "/" cannot reach another
    # route (here the secrets list of an environment instead of the environment).
    control = _cli(clients, "admin", "env", "show", "staging\x1b[2J")
    assert control.returncode == 2, control.stderr
    assert "control characters" in control.stderr
    slash = _cli(clients, "admin", "env", "show", "staging/secrets", "--json")
    assert slash.returncode == 2, slash.stdout + slash.stderr
    assert "is not a name" in slash.stderr
    assert slash.stdout == ""
