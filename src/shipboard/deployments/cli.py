"""`shipboard deploy|rollback|status|approve|cancel|logs`: deployments through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipboard.client import ShipboardClient
from shipboard.core.errors import InvalidInput, ShipboardError

out = Console(soft_wrap=True, highlight=False)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("rollback")(rollback)
    app.command("status")(status)
    app.command("approve")(approve)
    app.command("cancel")(cancel)
    app.command("logs")(logs)


def deploy(
    environment: Annotated[str, typer.Argument(help="development, staging or production")],
    version: Annotated[str, typer.Option(help="Version to deploy")],
    commit: Annotated[str, typer.Option(help="Commit SHA (7-40 hex)")],
    commit_timestamp: Annotated[
        str | None, typer.Option(help="When the commit was made (ISO 8601), for lead time")
    ] = None,
    force: Annotated[bool, typer.Option(help="Skip the gates (admins only; audited)")] = False,
    wait: Annotated[
        bool, typer.Option(help="Follow it live; exit 0 on success, 1 otherwise")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a deployment (gates are checked); with --wait, watch it to the end."""
    body: dict[str, Any] = {"environment": environment, "version": version, "commit_sha": commit}
    if commit_timestamp:
        body["commit_timestamp"] = commit_timestamp
    if force:
        body["force"] = True
    with ShipboardClient.from_settings() as client:
        created = client.request("POST", "/api/v1/deployments", json=body)
        if as_json and not wait:
            print(json.dumps(created))
            return
        out.print(f"deployment {created['id']}: {environment} {version} ({created['status']})")
        if created["approval"]["required"]:
            out.print("waiting for approval: another deployer runs `shipboard approve ID`")
        if not wait:
            return
        final = _follow(client, created["id"])
    if as_json:
        print(json.dumps({"id": created["id"], "status": final}))
    raise typer.Exit(0 if final == "success" else 1)


def rollback(
    deployment_id: Annotated[str | None, typer.Argument(help="The deployment to roll back")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Roll back what serves ENV now")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the rollback to its end")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Redeploy the last good version before a deployment (or before ENV's current one)."""
    if bool(deployment_id) == bool(env):
        raise InvalidInput("give either a deployment ID or --env ENV")
    path = (
        f"/api/v1/environments/{env}/rollback"
        if env
        else f"/api/v1/deployments/{deployment_id}/rollback"
    )
    with ShipboardClient.from_settings() as client:
        created = client.request("POST", path)
        if as_json and not wait:
            print(json.dumps(created))
            return
        out.print(f"rollback {created['id']}: back to {created['version']} ({created['status']})")
        if wait:
            final = _follow(client, created["id"])
            raise typer.Exit(0 if final == "success" else 1)


def status(as_json: JsonFlag = False) -> None:
    """Per environment: what serves now, the last deployment, what runs or waits."""
    with ShipboardClient.from_settings() as client:
        envs = client.get("/api/v1/environments")["items"]
        rows = []
        for env in envs:
            name = env["name"]
            recent = client.get("/api/v1/deployments", params={"environment": name, "limit": 50})[
                "items"
            ]
            current = next((d for d in recent if d["status"] == "success"), None)
            last = recent[0] if recent else None
            active = [d for d in recent if d["status"] in ("building", "deploying")]
            queued = [d for d in recent if d["status"] == "pending"]
            rows.append(
                {
                    "environment": name,
                    "current": current,
                    "last": last,
                    "running": active[0] if active else None,
                    "queued": len(queued),
                }
            )
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(
        "environment", "current version", "commit", "since", "last deployment", "running", "queued"
    )
    for row in rows:
        cur, last, running = row["current"], row["last"], row["running"]
        table.add_row(
            row["environment"],
            cur["version"] if cur else "-",
            cur["commit_sha"][:12] if cur else "-",
            (cur["completed_at"] or "")[:19] if cur else "-",
            f"{last['version']} {last['status']} by {last['triggered_by']}" if last else "-",
            f"{running['version']} ({running['status']})" if running else "-",
            str(row["queued"]),
        )
    out.print(table)


def approve(deployment_id: str, as_json: JsonFlag = False) -> None:
    """Approve a deployment that waits for approval (not one you triggered)."""
    with ShipboardClient.from_settings() as client:
        detail = client.request("POST", f"/api/v1/deployments/{deployment_id}/approve")
    if as_json:
        print(json.dumps(detail))
    else:
        out.print(f"approved {deployment_id}")


def cancel(deployment_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a pending or running deployment."""
    with ShipboardClient.from_settings() as client:
        detail = client.request("POST", f"/api/v1/deployments/{deployment_id}/cancel")
    if as_json:
        print(json.dumps(detail))
    else:
        out.print(f"cancel requested for {deployment_id} ({detail['status']})")


def logs(
    deployment_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    level: Annotated[str | None, typer.Option(help="Only this level")] = None,
) -> None:
    """Print a deployment's log lines (with --follow, live until it ends)."""
    with ShipboardClient.from_settings() as client:
        if follow:
            final = _follow(client, deployment_id, level=level)
            raise typer.Exit(0 if final == "success" else 1)
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if level:
                params["level"] = level
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/api/v1/deployments/{deployment_id}/logs", params=params)
            for line in page["items"]:
                _print_line(line)
            cursor = page["next_cursor"]
            if not cursor:
                return


def _follow(client: ShipboardClient, deployment_id: str, *, level: str | None = None) -> str:
    for event, data in _events(client, f"/api/v1/deployments/{deployment_id}/logs/stream"):
        if event == "log":
            line = json.loads(data)
            if level is None or line["level"] == level:
                _print_line(line)
        elif event == "end":
            final = str(json.loads(data)["status"])
            style = "bold green" if final == "success" else "bold red"
            out.print(f"[{style}]deployment {final}[/]")
            return final
    raise ShipboardError("the log stream ended before the deployment did")


def _events(client: ShipboardClient, path: str) -> Iterator[tuple[str, str]]:
    http = client._http
    with http.stream("GET", path, timeout=None) as response:
        if response.status_code >= 400:
            response.read()
            raise ShipboardError(f"cannot follow {path}: HTTP {response.status_code}")
        event, data = "message", list[str]()
        for raw in response.iter_lines():
            if raw == "":
                if data:
                    yield event, "\n".join(data)
                event, data = "message", list[str]()
            elif raw.startswith("event:"):
                event = raw[6:].strip()
            elif raw.startswith("data:"):
                data.append(raw[5:].lstrip())


def _print_line(line: dict[str, Any]) -> None:
    style = LEVEL_STYLE.get(line["level"], "")
    stamp = line["timestamp"][11:23]
    text = f"{stamp} {line['source']:>9} {line['message']}"
    out.print(f"[{style}]{text}[/]" if style else text, markup=bool(style))
