"""`shipboard deploy|rollback|status|approve|cancel|logs`: deployments through the API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipboard.client import Client, ServerUnreachable, segment
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console
from shipboard.deployments.schemas import DeploymentDetail, DeploymentLogRead

out = console(soft_wrap=True)
err = console(stderr=True, soft_wrap=True)
LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("report-status")(report_status)
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
    logs_url: Annotated[str | None, typer.Option(help="Where the deploy job's logs are")] = None,
    artifacts_url: Annotated[str | None, typer.Option(help="Where its artifacts are")] = None,
    force: Annotated[bool, typer.Option(help="Skip the gates (admins only; audited)")] = False,
    wait: Annotated[
        bool, typer.Option(help="Follow it live; exit 0 on success, 1 otherwise")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a deployment (gates are checked: exit 1 when one blocks it); with --wait, stream
    its log to the end and exit with its result."""
    with Client.from_settings() as client:
        created = client.create_deployment(
            environment,
            version,
            commit,
            commit_timestamp=commit_timestamp,
            logs_url=logs_url,
            artifacts_url=artifacts_url,
            force=force,
        )
        if as_json and not wait:
            print(created.model_dump_json())
            return
        # With --json the log goes to standard error, so that standard output is one document.
        say = err if as_json else out
        say.print(f"deployment {created.id}: {environment} {version} ({created.status})")
        if created.approval.required:
            say.print("waiting for approval: another deployer runs `shipboard approve ID`")
        if not wait:
            return
        final = _wait(client, created, as_json=as_json)
        if final != "success":
            _follow_auto_rollback(client, created.id, environment, say=say)
    raise typer.Exit(0 if final == "success" else 1)


# The worker starts an automatic rollback just after the failed deployment's final status, in a
# transaction of its own; this is how long --wait looks for it before saying there is none.
AUTO_ROLLBACK_GRACE_S = 15.0


def _follow_auto_rollback(
    client: Client, deployment_id: uuid.UUID, environment: str, *, say: Console
) -> None:
    """If the environment rolls back automatically, say so and follow the rollback to its end."""
    features = client.get(f"/api/v1/environments/{segment(environment)}").get("features") or {}
    if not features.get("auto_rollback"):
        return
    # The worker rolls back a deployment whose verification failed (the service was changed and
    # is unhealthy); one that failed before verifying changed nothing to undo.
    if client.get_deployment(deployment_id).verify_time is None:
        return
    deadline = time.monotonic() + AUTO_ROLLBACK_GRACE_S
    while True:
        recent = client.get(
            "/api/v1/deployments", params={"environment": environment, "limit": 20}
        )["items"]
        rollback = next((d for d in recent if d.get("rollback_from") == str(deployment_id)), None)
        if rollback is not None:
            break
        if time.monotonic() >= deadline:
            say.print(
                "no automatic rollback began (nothing to roll back to?); "
                f"see `shipboard logs {deployment_id}`"
            )
            return
        time.sleep(0.25)
    say.print(
        f"automatic rollback started: deployment {rollback['id']} "
        f"(back to {rollback['version']}); following it"
    )
    final = client.wait_for_deployment(
        rollback["id"], on_log=_printer(as_json=False, level=None, stream=say)
    ).status
    style = "bold green" if final == "success" else "bold red"
    say.print(f"rollback {final}", style=style)


def _deployment_id(value: str | None) -> str | None:
    # A mistyped id is the caller's mistake: say so here (exit 2), not after a round trip.
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a deployment id (a UUID)") from None


DeploymentId = Annotated[
    str, typer.Argument(help="A deployment's id (a UUID)", callback=_deployment_id)
]


def report_status(
    deployment_id: Annotated[
        str, typer.Argument(help="The deployment you report", callback=_deployment_id)
    ],
    new_status: Annotated[
        str, typer.Argument(metavar="STATUS", help="building, deploying, success or failed")
    ],
    error: Annotated[
        str | None, typer.Option("--error", help="Why it failed (with STATUS failed)")
    ] = None,
    build_time: Annotated[int | None, typer.Option(help="Milliseconds spent building")] = None,
    deploy_time: Annotated[int | None, typer.Option(help="Milliseconds spent deploying")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Advance a deployment your pipeline runs itself (one Shipboard does not run)."""
    with Client.from_settings() as client:
        detail = client.report_status(
            deployment_id,
            new_status,
            error_message=error,
            build_time=build_time,
            deploy_time=deploy_time,
        )
    if as_json:
        print(detail.model_dump_json())
    else:
        out.print(f"deployment {detail.id}: {detail.status}")


def rollback(
    deployment_id: Annotated[
        str | None, typer.Argument(help="The deployment to roll back", callback=_deployment_id)
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Roll back what serves ENV now")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the rollback to its end")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Skip approval and freezes (admins only; audited)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Redeploy the last good version before the deployment serving now (by ID, or ENV's).

    Only the serving deployment can be rolled back; where ENV requires approval the rollback
    waits for it, and freezes block it, unless an admin gives --force.
    """
    if bool(deployment_id) == bool(env):
        raise InvalidInput("give either a deployment ID or --env ENV")
    with Client.from_settings() as client:
        created = client.rollback(deployment_id, environment=env, force=force)
        if as_json and not wait:
            print(created.model_dump_json())
            return
        say = err if as_json else out
        say.print(f"rollback {created.id}: back to {created.version} ({created.status})")
        if wait:
            final = _wait(client, created, as_json=as_json)
            raise typer.Exit(0 if final == "success" else 1)


def status(as_json: JsonFlag = False) -> None:
    """Per environment: what serves now, the last deployment, what runs or waits."""
    with Client.from_settings() as client:
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
    out.print(status_table(rows))


def _minute(stamp: str | None) -> str:
    # "2026-12-03T15:40:12.5+00:00" → "2026-12-03 15:40": the API's times are UTC.
    return stamp[:16].replace("T", " ") if stamp else "-"


def status_table(rows: list[dict[str, Any]]) -> Table:
    """The status as a table that fits 80 columns: no borders, names and times never cut (long
    versions fold instead); the console shows cells as inert text (no markup, no highlighting)."""
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold", highlight=False)
    table.add_column("environment", no_wrap=True)
    table.add_column("serving", overflow="fold")
    table.add_column("since (UTC)", no_wrap=True)
    table.add_column("last deployment", overflow="fold")
    table.add_column("in flight", overflow="fold")
    for row in rows:
        cur, last, running = row["current"], row["last"], row["running"]
        flight = [f"{running['version']} {running['status']}"] if running else []
        if row["queued"]:
            flight.append(f"{row['queued']} queued")
        table.add_row(
            row["environment"],
            f"{cur['version']} {cur['commit_sha'][:7]}" if cur else "-",
            _minute(cur["completed_at"]) if cur else "-",
            f"{last['version']} {last['status']} by {last['triggered_by']}" if last else "-",
            ", ".join(flight) or "-",
        )
    return table


def approve(deployment_id: DeploymentId, as_json: JsonFlag = False) -> None:
    """Approve a deployment that waits for approval (not one you triggered)."""
    with Client.from_settings() as client:
        detail = client.approve(deployment_id)
    if as_json:
        print(detail.model_dump_json())
    else:
        out.print(f"approved {deployment_id}")


def cancel(deployment_id: DeploymentId, as_json: JsonFlag = False) -> None:
    """Cancel a pending or running deployment."""
    with Client.from_settings() as client:
        detail = client.cancel(deployment_id)
    if as_json:
        print(detail.model_dump_json())
    else:
        out.print(f"cancel requested for {deployment_id} ({detail.status})")


def logs(
    deployment_id: DeploymentId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    level: Annotated[str | None, typer.Option(help="Only this level")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (JSON Lines), for scripts.")
    ] = False,
) -> None:
    """Print a deployment's log lines (with --follow, live until it ends; exit 0 on success)."""
    show = _printer(as_json=as_json, level=level, stream=out)
    with Client.from_settings() as client:
        if follow:
            final = client.follow(deployment_id, on_log=show)
            if not as_json:
                _print_end(out, final)
            raise typer.Exit(0 if final == "success" else 1)
        cursor = None
        while True:
            page = client.logs(deployment_id, level=level, cursor=cursor)
            for line in page.items:
                show(line)
            cursor = page.next_cursor
            if not cursor:
                return


def _wait(client: Client, created: DeploymentDetail, *, as_json: bool) -> str:
    """Follow to the end; the status the stream ended with is the result. The deployment is
    read again only for --json's document: a server that restarts right after the stream
    ended must not turn a success into exit 4."""
    say = err if as_json else out
    final = client.follow(created.id, on_log=_printer(as_json=False, level=None, stream=say))
    _print_end(say, final)
    if as_json:
        try:
            document = client.get_deployment(created.id)
        except ServerUnreachable as exc:
            err.print(f"warning: {exc}; the document is the one created, with the final status")
            document = created.model_copy(update={"status": final})
        print(document.model_dump_json())
    return final


def _printer(
    *, as_json: bool, level: str | None, stream: Console
) -> Callable[[DeploymentLogRead], None]:
    def show(line: DeploymentLogRead) -> None:
        if level is not None and line.level != level:
            return
        if as_json:
            print(line.model_dump_json(), flush=True)
            return
        text = f"{line.timestamp.isoformat()[11:23]} {line.source:>9} {line.message}"
        stream.print(text, style=LEVEL_STYLE.get(line.level) or None)

    return show


def _print_end(stream: Console, final: str) -> None:
    style = "bold green" if final == "success" else "bold red"
    stream.print(f"deployment {final}", style=style)
