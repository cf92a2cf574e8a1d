"""`shipboard config check`: find stored configuration that today's validator refuses.

Configuration written by an older version, or edited in the database, is not re-checked when it
is read; a deploy gate then blocks on it (fail closed). This names every such value, with its
path and what to do, so it can be fixed before it blocks anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from shipboard.alerting import repository as alerting
from shipboard.alerting import service as alert_service
from shipboard.alerting.schemas import AlertRuleCreate, Matcher
from shipboard.config import get_settings
from shipboard.core.errors import format_loc
from shipboard.core.terminal import console
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.environments import repository as environments
from shipboard.environments import validation
from shipboard.notifications import repository as notifications
from shipboard.notifications.schemas import ChannelCreate

config_app = typer.Typer(
    help="Check stored configuration (SHIPBOARD_DATABASE_URL).", no_args_is_help=True
)
out = console(soft_wrap=True)


@dataclass(frozen=True)
class StoredProblem:
    kind: str  # environment, alert_rule, notification_channel, silence
    name: str
    path: str
    msg: str
    fix: str


def _environment_fix(name: str, loc: list[Any]) -> str:
    section = loc[0] if loc else ""
    key = loc[1] if len(loc) > 1 else None
    if section == "config" and isinstance(key, str):
        return f"shipboard env set {name} --config {key}=JSON (or --unset {key})"
    if section == "limits" and isinstance(key, str):
        return f"shipboard env set {name} --limit {key}=NUMBER (or --unset {key})"
    if section == "features" and isinstance(key, str):
        return f"shipboard env feature {name} {key} on|off"
    return f"PATCH /api/v1/environments/{name} with a corrected {section or 'value'}"


def environment_problems(session: Session) -> list[StoredProblem]:
    out_: list[StoredProblem] = []
    channels = notifications.channel_names(session)
    for env in environments.list_all(session):
        stored = {
            "domain": env.domain,
            "config": env.config if env.config is not None else {},
            "features": env.features if env.features is not None else {},
            "limits": env.limits if env.limits is not None else {},
        }
        problems = validation.environment_problems(stored)
        config = validation.stored_mapping(env.config)
        names = config.get("notification_channels")
        if isinstance(names, list):
            problems += [
                {"loc": ["config", "notification_channels", i], "msg": f"no channel named {n!r}"}
                for i, n in enumerate(names)
                if isinstance(n, str) and n not in channels
            ]
        reports = config.get("reports")
        for i, report in enumerate(reports if isinstance(reports, list) else []):
            wanted = report.get("channels") if isinstance(report, dict) else None
            problems += [
                {"loc": ["config", "reports", i, "channels", j], "msg": f"no channel named {n!r}"}
                for j, n in enumerate(wanted if isinstance(wanted, list) else [])
                if isinstance(n, str) and n not in channels
            ]
        out_ += [
            StoredProblem(
                "environment",
                env.name,
                format_loc(p["loc"]),
                p["msg"],
                _environment_fix(env.name, list(p["loc"])),
            )
            for p in problems
        ]
    return out_


def rule_problems(session: Session) -> list[StoredProblem]:
    out_: list[StoredProblem] = []
    channels = notifications.channel_names(session)
    for rule in alerting.all_rules(session):
        fields = alert_service.rule_fields(rule)
        problems = validation.model_problems(AlertRuleCreate, fields)
        if isinstance(rule.channels, list):
            problems += [
                {"loc": ["channels", i], "msg": f"no channel named {n!r}"}
                for i, n in enumerate(rule.channels)
                if isinstance(n, str) and n not in channels
            ]
        fix = f"delete alert rule {rule.name!r} (DELETE /api/v1/alert-rules/{rule.id}), recreate"
        out_ += [
            StoredProblem("alert_rule", rule.name, format_loc(p["loc"]), p["msg"], fix)
            for p in problems
        ]
    return out_


def channel_problems(session: Session) -> list[StoredProblem]:
    out_: list[StoredProblem] = []
    for channel in notifications.all_channels(session):
        fields = {
            "name": channel.name,
            "kind": channel.kind,
            # Secrets are stored apart, encrypted; their presence is what the shape needs.
            "config": {
                **validation.stored_mapping(channel.config),
                **{
                    # The URL was checked when it was written; its ciphertext is not one.
                    key: "https://encrypted.invalid/" if key == "url" else "***"
                    for key in validation.stored_mapping(channel.secrets)
                },
            },
            "group_by": channel.group_by,
            "group_wait_s": channel.group_wait_s,
            "group_interval_s": channel.group_interval_s,
            "repeat_interval_s": channel.repeat_interval_s,
            "send_resolved": channel.send_resolved,
        }
        fix = f"delete and re-create notification channel {channel.name!r}"
        out_ += [
            StoredProblem("notification_channel", channel.name, format_loc(p["loc"]), p["msg"], fix)
            for p in validation.model_problems(ChannelCreate, fields)
        ]
    return out_


def silence_problems(session: Session) -> list[StoredProblem]:
    out_: list[StoredProblem] = []
    for silence in alerting.all_silences(session, newest_first=False):
        matchers = silence.matchers if isinstance(silence.matchers, list) else None
        problems: list[dict[str, Any]] = (
            [{"loc": ["matchers"], "msg": "must be a non-empty list of matchers"}]
            if not matchers
            else [
                p
                for i, m in enumerate(matchers)
                for p in validation.model_problems(Matcher, m, loc=("matchers", i))
            ]
        )
        fix = f"expire silence {silence.id} (DELETE /api/v1/silences/{silence.id}), create it anew"
        out_ += [
            StoredProblem("silence", str(silence.id), format_loc(p["loc"]), p["msg"], fix)
            for p in problems
        ]
    return out_


def find_problems(session: Session) -> list[StoredProblem]:
    """Every stored value the validator refuses: environments, alert rules, channels, silences."""
    return [
        *environment_problems(session),
        *rule_problems(session),
        *channel_problems(session),
        *silence_problems(session),
    ]


@config_app.command("check")
def check(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document on standard output, for scripts."),
    ] = False,
) -> None:
    """List stored configuration that the validator refuses, with its path and how to fix it;
    exit 1 when there is any (reads the database directly; changes nothing)."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        with system_transaction(engine) as session:
            problems = find_problems(session)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps({"problems": [asdict(p) for p in problems]}))
    elif not problems:
        out.print("all stored configuration is valid")
    else:
        for p in problems:
            out.print(f"{p.kind} {p.name}: {p.path}: {p.msg}")
            out.print(f"  fix: {p.fix}")
        out.print(f"{len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)
