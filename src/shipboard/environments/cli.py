"""`shipboard env …`: environments through the API (SHIPBOARD_URL, SHIPBOARD_TOKEN)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from shipboard.client import Client, invalid_input_is_usage, segment
from shipboard.core.errors import InvalidInput
from shipboard.core.terminal import JsonFlag, console
from shipboard.environments.validation import LIMIT_KEYS, EnvironmentConfigPatch

app = typer.Typer(help="Show and change environments (through the API).", no_args_is_help=True)
secret_app = typer.Typer(help="Write-only secrets of an environment.", no_args_is_help=True)
app.add_typer(secret_app, name="secret")
out = console()
CONFIG_KEYS = frozenset(EnvironmentConfigPatch.model_fields)


def _client() -> Client:
    return Client.from_settings()


@app.command("show")
def show(
    name: Annotated[str | None, typer.Argument(help="One environment; all when omitted")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show environments: domain, config (credentials redacted unless admin), flags, limits."""
    with _client() as client:
        data = client.get(
            f"/api/v1/environments/{segment(name)}" if name else "/api/v1/environments"
        )
    items = [data] if name else data["items"]
    if as_json:
        print(json.dumps(data))
        return
    for env in items:
        table = Table(title=f"{env['name']} — {env['domain']}", show_header=False)
        table.add_row("features", json.dumps(env["features"], sort_keys=True))
        table.add_row("limits", json.dumps(env["limits"], sort_keys=True))
        table.add_row("secrets", ", ".join(env["secrets"]) or "-")
        for key, value in sorted(env["config"].items()):
            table.add_row(f"config.{key}", json.dumps(value))
        out.print(table)


def _parse_assignments(values: list[str], option: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} takes KEY=VALUE, got {item!r}")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _unset_target(key: str) -> tuple[str, str]:
    """Where ``--unset KEY`` removes from: ``limits.K`` and ``config.K`` say so; a bare name of a
    limit that is no config key is that limit (``api_rate_limit`` is both: config, as before)."""
    section, dot, name = key.partition(".")
    if dot and section in ("config", "limits") and name:
        return section, name
    if key in LIMIT_KEYS and key not in CONFIG_KEYS:
        return "limits", key
    return "config", key


@app.command("set")
def set_(
    name: str,
    domain: Annotated[str | None, typer.Option(help="New domain")] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", help="KEY=VALUE (JSON or text); repeatable")
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", help="KEY=NUMBER; repeatable")
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(
            "--unset",
            help="Remove config KEY, or a limit (a limit's name, or limits.KEY for "
            "api_rate_limit, which is both); repeatable",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an environment with a JSON Merge Patch built from the options (admin)."""
    patch: dict[str, Any] = {}
    if domain:
        patch["domain"] = domain
    config_patch = _parse_assignments(config or [], "--config")
    limits_patch = _parse_assignments(limit or [], "--limit")
    for key in unset or []:
        section, field = _unset_target(key)
        (limits_patch if section == "limits" else config_patch)[field] = None
    if config_patch:
        patch["config"] = config_patch
    if limits_patch:
        patch["limits"] = limits_patch
    if not patch:
        raise InvalidInput("nothing to change: give --domain, --config, --limit or --unset")
    with _client() as client, invalid_input_is_usage():
        env = client.patch(f"/api/v1/environments/{segment(name)}", patch)
    if as_json:
        print(json.dumps(env))
    else:
        out.print(f"updated {name}")


@app.command("feature")
def feature(
    name: str,
    flag: str,
    state: Annotated[str, typer.Argument(help="on or off")],
    as_json: JsonFlag = False,
) -> None:
    """Turn feature FLAG of environment NAME on or off (admin)."""
    if state not in ("on", "off"):
        raise InvalidInput("state must be 'on' or 'off'")
    with _client() as client, invalid_input_is_usage():
        env = client.put(
            f"/api/v1/environments/{segment(name)}/features/{segment(flag)}",
            {"enabled": state == "on"},
        )
    if as_json:
        print(json.dumps(env))
    else:
        out.print(f"{name}: {flag} {state}")


@secret_app.command("set")
def secret_set(env: str, key: str, as_json: JsonFlag = False) -> None:
    """Store secret KEY of ENV; the value is read from standard input, never from arguments."""
    if sys.stdin.isatty():
        out.print(f"value for {key} (end with Ctrl-D):", highlight=False)
    value = sys.stdin.read()
    # One trailing newline is how `echo` and here-strings end a value, not part of it.
    value = value[:-1] if value.endswith("\n") else value
    if not value:
        raise InvalidInput("empty secret value on standard input")
    with _client() as client:
        stored = client.put(
            f"/api/v1/environments/{segment(env)}/secrets/{segment(key)}", {"value": value}
        )
    if as_json:
        print(json.dumps(stored))
    else:
        out.print(f"stored secret {key} in {env}")


@secret_app.command("delete")
def secret_delete(env: str, key: str, as_json: JsonFlag = False) -> None:
    """Remove secret KEY of ENV (admin)."""
    with _client() as client:
        client.delete(f"/api/v1/environments/{segment(env)}/secrets/{segment(key)}")
    if as_json:
        print(json.dumps({"deleted": key, "environment": env}))
    else:
        out.print(f"deleted secret {key} from {env}")


@secret_app.command("list")
def secret_list(env: str, as_json: JsonFlag = False) -> None:
    """List the names of ENV's secrets and when they changed."""
    with _client() as client:
        data = client.get(f"/api/v1/environments/{segment(env)}/secrets")
    if as_json:
        print(json.dumps(data))
        return
    table = Table("key", "updated")
    for item in data["items"]:
        table.add_row(item["key"], item["updated_at"] or "")
    out.print(table)
