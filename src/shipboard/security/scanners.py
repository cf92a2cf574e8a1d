"""Running real scanners through their CLIs and reading their output with the importers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TOOLS = {
    "sast": "bandit",
    "iac": "checkov",
    "dependency": "pip-audit",
    "container": "trivy",
}
TIMEOUT_S = 900
# The exit codes with which each scanner reports a finished run (found something or not).
# Anything else is a failed run, even with JSON on stdout: semgrep exits 7 with a report of
# "errors" and no results when its rules do not load, and that report is not a clean scan.
FINISHED_EXIT_CODES = {
    "bandit": (0, 1),
    "semgrep": (0, 1),
    "checkov": (0, 1),
    "pip-audit": (0, 1),
    "trivy": (0,),
}


class ScanError(Exception):
    """The scanner could not produce a report; the message is shown on the scan.

    ``detail`` is what only the server log gets: a scanner's stderr quotes the lines it could
    not read, and any file in a scan root (``.env``, a key file) can be handed to it as a
    target, so its words never reach a field that other users read."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class ScannerRun:
    tool: str
    command: list[str]


def allowed_target(target: str, roots: list[str], protected: Sequence[Path] = ()) -> Path:
    """The resolved target, if it lies inside one of the allowed roots (symlinks resolved) and
    neither holds nor lies inside a protected path (Shipboard's home, keys, backups, database),
    whatever the roots say."""
    if "\x00" in target:
        raise ScanError("target contains a NUL character, which no path can hold")
    path = Path(target).resolve()
    for guarded in protected:
        own = Path(guarded).resolve()
        # A directory above the home is refused too: the scanner would walk into it.
        if path == own or own in path.parents or path in own.parents:
            raise ScanError(
                f"target {target!r} is or holds Shipboard's own files (SHIPBOARD_HOME, its "
                "keys, backups or database), which scanners may not read"
            )
    for root in roots:
        base = Path(root).resolve()
        if path == base or base in path.parents:
            return path
    raise ScanError(f"target {target!r} is outside the allowed scan roots (SHIPBOARD_SCAN_ROOTS)")


def executable(tool: str) -> str:
    """The tool in SHIPBOARD_SCANNER_PATH, on PATH, or beside this Python (where the
    `scanners` extra installs bandit and pip-audit)."""
    extra = os.environ.get("SHIPBOARD_SCANNER_PATH")
    found = (
        (shutil.which(tool, path=extra) if extra else None)
        or shutil.which(tool)
        or shutil.which(tool, path=str(Path(sys.executable).parent))
    )
    if not found:
        raise ScanError(f"{tool} is not installed")
    return found


def command(scan_type: str, tool: str, target: Path, config: dict[str, Any]) -> ScannerRun:
    security = config.get("security")
    security = security if isinstance(security, dict) else {}
    binary = executable(tool)
    if tool == "bandit":
        return ScannerRun(tool, [binary, "-r", str(target), "-f", "json", "-q"])
    if tool == "semgrep":
        rules = security.get("semgrep_rules")
        if not rules:
            raise ScanError("semgrep needs config.security.semgrep_rules (a local rules file)")
        return ScannerRun(
            tool,
            # No version check: it waits on the network, which a closed machine never answers.
            [
                binary,
                "--config",
                str(rules),
                "--json",
                "--metrics=off",
                "--disable-version-check",
                str(target),
            ],
        )
    if tool == "checkov":
        return ScannerRun(tool, [binary, "-d", str(target), "-o", "json", "--quiet"])
    if tool == "pip-audit":
        args = [binary, "-f", "json", "--progress-spinner", "off", "-s", "osv"]
        if security.get("osv_url"):
            args += ["--osv-url", str(security["osv_url"])]
        if target.is_file():
            # Pinned requirements are read as they are, without building an environment.
            args += ["-r", str(target), "--no-deps", "--disable-pip"]
        else:
            args += ["--path", str(target)]
        return ScannerRun(tool, args)
    if tool == "trivy":
        kind = "image" if scan_type == "container" else "fs"
        return ScannerRun(tool, [binary, kind, "--format", "json", "--quiet", str(target)])
    raise ScanError(f"no runner for {tool!r} (use bandit, semgrep, checkov, pip-audit or trivy)")


def run(scanner: ScannerRun, *, cwd: str) -> bytes:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, "LANG": "C.UTF-8"}
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists, never a shell
            scanner.command, cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ScanError(f"{scanner.tool} did not finish within {TIMEOUT_S} s") from exc
    # Scanners exit non-zero when they find something; no JSON on stdout, or an exit code the
    # tool uses for errors, is a failure.
    if not done.stdout.strip() or done.returncode not in FINISHED_EXIT_CODES.get(
        scanner.tool, (0, 1)
    ):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-20:]
        raise ScanError(
            f"{scanner.tool} failed (exit {done.returncode})"
            + ("" if done.stdout.strip() else " without a report"),
            detail=" | ".join(tail)[:4000],
        )
    return done.stdout
