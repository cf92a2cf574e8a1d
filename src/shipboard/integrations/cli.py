"""`shipboard integrations …`: GitHub/GitLab webhook configuration, through the API (admin)."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from shipboard.client import Client, segment
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console

app = typer.Typer(
    help="GitHub and GitLab deployment webhooks (through the API; admin).", no_args_is_help=True
)
out = console(soft_wrap=True)
err = console(stderr=True, soft_wrap=True)
KINDS = ("github", "gitlab")


def _kind(value: str) -> str:
    if value not in KINDS:
        raise InvalidInput(f"integration kind must be github or gitlab, not {value!r}")
    return value


def _env_map(items: list[str]) -> dict[str, str]:
    mapped: dict[str, str] = {}
    for item in items:
        theirs, sep, ours = item.rpartition("=")
        if not sep or not theirs or not ours:
            raise InvalidInput(f"--env-map takes THEIRS=OURS, got {item!r}")
        mapped[theirs] = ours
    return mapped


@app.command("add")
def add(
    kind: Annotated[str, typer.Argument(help="github or gitlab")],
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="Read the webhook secret (GitLab: token) from standard input; without it a "
            "strong one is generated and printed once",
        ),
    ] = False,
    env_map: Annotated[
        list[str] | None,
        typer.Option(
            "--env-map",
            help="THEIRS=OURS, e.g. github-pages=staging; repeatable",
            show_default=False,
        ),
    ] = None,
    deploy_workflow: Annotated[
        str, typer.Option(help="GitHub: glob of workflow names whose completed runs are deploys")
    ] = "*deploy*",
    workflow_env: Annotated[
        str, typer.Option(help="GitHub: where such a run deploys when its name does not say")
    ] = "production",
    as_json: JsonFlag = False,
) -> None:
    """Configure (or replace) the GitHub or GitLab integration."""
    kind = _kind(kind)
    generated = None
    if secret_stdin:
        if sys.stdin.isatty():
            err.print("webhook secret (end with Ctrl-D):")
        secret = sys.stdin.read()
        # One trailing newline is how `echo` and here-strings end a value, not part of it.
        secret = secret[:-1] if secret.endswith("\n") else secret
        if not secret:
            raise InvalidInput("empty secret on standard input")
    else:
        secret = generated = secrets.token_urlsafe(32)
    body: dict[str, Any] = {
        "secret": secret,
        "env_map": _env_map(env_map or []),
        "deploy_workflow": deploy_workflow,
        "workflow_environment": workflow_env,
    }
    with Client.from_settings() as client:
        result = client.put(f"/api/v1/integrations/{segment(kind)}", body)
        url = client.base_url.rstrip("/") + result["webhook_path"]
    if as_json:
        print(json.dumps({**result, "webhook_url": url, "generated_secret": generated}))
        return
    out.print(f"{kind} integration saved; webhook URL: {url}")
    if generated:
        out.print("generated secret (shown once; paste it into the webhook's settings):")
        out.print(f"  {generated}")
    if kind == "github":
        out.print(
            "GitHub: Settings → Webhooks → Add webhook; content type application/json; events: "
            "Deployments, Deployment statuses, Workflow runs"
        )
    else:
        out.print("GitLab: Settings → Webhooks; Secret token as above; trigger: Deployment events")


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Configured integrations (never their secrets)."""
    with Client.from_settings() as client:
        result = client.get("/api/v1/integrations")
    if as_json:
        print(json.dumps(result))
        return
    table = Table("kind", "webhook", "env map", "deploy workflow", "workflow env", "updated")
    for item in result["items"]:
        table.add_row(
            item["kind"],
            item["webhook_path"],
            ", ".join(f"{k}={v}" for k, v in item["env_map"].items()) or "(same names)",
            item["deploy_workflow"] if item["kind"] == "github" else "-",
            item["workflow_environment"] if item["kind"] == "github" else "-",
            f"{item['updated_at'][:19]} by {item['updated_by']}",
        )
    out.print(table)


@app.command("remove")
def remove(kind: Annotated[str, typer.Argument(help="github or gitlab")]) -> None:
    """Remove an integration; its webhooks are refused from then on."""
    kind = _kind(kind)
    with Client.from_settings() as client:
        client.delete(f"/api/v1/integrations/{segment(kind)}")
    out.print(f"removed the {kind} integration")


@app.command("deliveries")
def deliveries(
    kind: Annotated[str, typer.Argument(help="github or gitlab")],
    outcome: Annotated[
        str | None, typer.Option(help="recorded, updated, unchanged, duplicate, ignored, …")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Webhooks received and what Shipboard made of each: debug a webhook from here."""
    kind = _kind(kind)
    params: dict[str, Any] = {"limit": limit}
    if outcome:
        params["outcome"] = outcome
    with Client.from_settings() as client:
        result = client.get(f"/api/v1/integrations/{segment(kind)}/deliveries", params=params)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("received", "event", "delivery", "status", "outcome", "detail")
    for item in result["items"]:
        table.add_row(
            item["received_at"][:19],
            item["event"] or "-",
            (item["delivery_id"] or "-")[:36],
            str(item["status_code"]),
            item["outcome"],
            item["detail"],
        )
    out.print(table)
