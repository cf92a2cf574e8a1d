"""Configuration as code: `shipboard schema | diff | apply | export` and `/api/v1/config`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.configuration import credentials, source
from shipboard.configuration.cli import document_schema
from shipboard.configuration.source import SourceError
from shipboard.environments.merge_patch import merge_patch, merge_patch_between
from tests.support.live import Clients
from tests.support.paths import ROOT

EXAMPLE = ROOT / "docs" / "shipboard.example.yaml"
EXAMPLE_VARS = {
    "STAGING_DATABASE_URL": "postgresql://app:staging-pw@db.staging.internal/app",
    "PRODUCTION_DATABASE_URL": "postgresql://app:prod-pw-93b1@db.prod.internal/app",
    "PRODUCTION_RESEND_API_KEY": "re_live_5f0c2a8e",
    "TEAM_WEBHOOK_SECRET": "whsec-7d1e",
    "GITHUB_WEBHOOK_SECRET": "gh-secret-41f2",
}


def _cli(
    clients: Clients, *args: str, role: str = "admin", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={
            **os.environ,
            "SHIPBOARD_URL": clients.server.base_url,
            "SHIPBOARD_TOKEN": clients.tokens[role],
            "COLUMNS": "200",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _revision(clients: Clients) -> str:
    with clients.as_role("admin") as admin:
        response = admin.get("/api/v1/config")
    assert response.status_code == 200, response.text
    return str(response.json()["revision"])


def _audit_actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT action FROM audit_events")))


# --- the file: pure ---------------------------------------------------------------------------


def test_parse_keeps_the_position_of_every_value() -> None:
    parsed = source.parse("version: 1\nenvironments:\n  staging:\n    domain: x.example\n")
    assert parsed.data == {"version": 1, "environments": {"staging": {"domain": "x.example"}}}
    assert parsed.locate(("environments", "staging", "domain")) == (4, 13)
    # A path that was not written points at its nearest written ancestor.
    assert parsed.locate(("environments", "staging", "config", "x")) == (4, 5)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'", 2),
        ("base: &b {x: 1}\nother: *b\n", "anchors and aliases are not supported", 2),
        ("a: [1, 2\n", "not valid YAML", 2),
        ("when: !!python/object:os.system x\n", "unsupported YAML tag", 1),
        ("", "the file is empty", None),
        # PyYAML's composer recurses: deep nesting is refused before it runs.
        ("a: " + "[" * 5000 + "]" * 5000, "nested deeper than 32 levels", 1),
    ],
)
def test_parse_refuses_what_yaml_would_let_through(
    text: str, message: str, line: int | None
) -> None:
    with pytest.raises(SourceError) as caught:
        source.parse(text)
    problem = caught.value.problems[0]
    assert message in problem.message
    assert problem.line == line


def test_timestamps_and_yes_no_stay_what_json_would_read() -> None:
    parsed = source.parse("at: 2026-01-02\nflag: true\nword: 'yes'\n")
    assert parsed.data == {"at": "2026-01-02", "flag": True, "word": "yes"}


def test_references_resolve_from_the_environment_and_name_the_missing_one() -> None:
    parsed = source.parse("url: ${DB_URL}\nliteral: $${NOT_A_REF}\nother: ${MISSING}\n")
    with pytest.raises(SourceError) as caught:
        source.resolve(parsed, environ={"DB_URL": "postgresql://u:p@h/d"})
    assert [(p.path, p.line) for p in caught.value.problems] == [(("other",), 3)]
    assert "MISSING is not set" in caught.value.problems[0].message
    resolved = source.resolve(parsed, environ={"DB_URL": "postgresql://u:p@h/d", "MISSING": "m"})
    assert resolved == {"url": "postgresql://u:p@h/d", "literal": "${NOT_A_REF}", "other": "m"}


@pytest.mark.parametrize(
    ("source_value", "target"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}}),
        ({"a": [1, 2]}, {"a": [2]}),
        ({"a": {"b": 1}}, {}),
        ({}, {"a": {"b": {}}}),
    ],
)
def test_merge_patch_between_turns_source_into_target(
    source_value: dict[str, Any], target: dict[str, Any]
) -> None:
    assert merge_patch(source_value, merge_patch_between(source_value, target)) == target


def test_published_schema_matches_the_code() -> None:
    published = json.loads((ROOT / "docs" / "config-schema.json").read_text())
    assert published == document_schema(), "run `shipboard schema > docs/config-schema.json`"


# --- over the API and the CLI -----------------------------------------------------------------


def test_the_example_applies_once_and_then_changes_nothing(
    clients: Clients, engine: Engine
) -> None:
    before = _revision(clients)
    # SQLite's audit trail is append-only, never emptied between tests: count from here.
    seen = Counter(_audit_actions(engine))
    applied = _cli(clients, "apply", "-f", str(EXAMPLE), env=EXAMPLE_VARS)
    assert applied.returncode == 0, applied.stderr
    assert "applied: revision" in applied.stdout
    # Credentials are shown as changed, never by value.
    for value in EXAMPLE_VARS.values():
        assert value not in applied.stdout
    assert _revision(clients) != before
    with clients.as_role("admin") as admin:
        production = admin.get("/api/v1/environments/production").json()
        rules = admin.get("/api/v1/alert-rules").json()["items"]
    assert production["config"]["freeze_windows"][0]["timezone"] == "Europe/Prague"
    assert production["features"]["require_approval"] is True
    assert {r["name"] for r in rules} == {
        "production p95 latency",
        "production error rate anomaly",
    }
    actions = Counter(_audit_actions(engine)) - seen
    assert actions["config.apply"] == 1
    # The parts are recorded in that one event, not as events of their own.
    assert "alert_rule.create" not in actions
    assert "channel.create" not in actions

    again = _cli(clients, "apply", "-f", str(EXAMPLE), env=EXAMPLE_VARS)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout
    diff = _cli(clients, "diff", "-f", str(EXAMPLE), env=EXAMPLE_VARS)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert (Counter(_audit_actions(engine)) - seen)["config.apply"] == 1


def test_export_then_diff_shows_nothing(clients: Clients, tmp_path: Path) -> None:
    assert _cli(clients, "apply", "-f", str(EXAMPLE), env=EXAMPLE_VARS).returncode == 0
    exported = tmp_path / "shipboard.yaml"
    result = _cli(clients, "export", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    text = exported.read_text()
    for value in EXAMPLE_VARS.values():
        assert value not in text, "a credential reached the exported file"
    assert "${PRODUCTION_DATABASE_URL}" in text
    assert "${CHANNEL_TEAM_WEBHOOK_SECRET}" in text
    assert "${GITHUB_WEBHOOK_SECRET}" in text
    assert "PRODUCTION_DATABASE_URL" in result.stderr
    exported_vars = {
        **EXAMPLE_VARS,
        "CHANNEL_TEAM_WEBHOOK_SECRET": EXAMPLE_VARS["TEAM_WEBHOOK_SECRET"],
    }
    diff = _cli(clients, "diff", "-f", str(exported), env=exported_vars)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "no changes" in diff.stdout


def test_diff_shows_fields_and_exits_1_when_something_would_change(
    clients: Clients, tmp_path: Path
) -> None:
    assert _cli(clients, "apply", "-f", str(EXAMPLE), env=EXAMPLE_VARS).returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        EXAMPLE.read_text().replace(
            "api_rate_limit: 1200\n      max_file", "api_rate_limit: 900\n      max_file"
        )
    )
    diff = _cli(
        clients, "diff", "-f", str(changed), env={**EXAMPLE_VARS, "PRODUCTION_RESEND_API_KEY": "x"}
    )
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "~ environment production" in diff.stdout
    assert "config.api_rate_limit: 1200 → 900" in diff.stdout
    assert 'config.resend_api_key: "***" → "***"' in diff.stdout
    as_json = _cli(clients, "diff", "-f", str(changed), "--json", env=EXAMPLE_VARS)
    document = json.loads(as_json.stdout)
    assert document["changed"] is True
    assert [c["name"] for c in document["changes"] if c["action"] == "update"] == ["production"]


def test_an_invalid_file_names_file_line_and_column_and_changes_nothing(
    clients: Clients, tmp_path: Path
) -> None:
    before = _revision(clients)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "environments:\n"
        "  staging:\n"
        "    domain: staging.example.app\n"
        "    config:\n"
        "      api_rate_limit: lots\n"
    )
    result = _cli(clients, "apply", "-f", str(bad))
    assert result.returncode == 2
    assert f"{bad}:6:23: environments.staging.config.api_rate_limit:" in result.stderr
    assert _revision(clients) == before

    # Refused by a domain service, not the schema: still mapped back to its place in the file.
    unknown_channel = tmp_path / "unknown-channel.yaml"
    unknown_channel.write_text(
        "version: 1\n"
        "alert_rules:\n"
        "  - name: r\n"
        "    kind: threshold\n"
        "    environment: staging\n"
        "    metric: m\n"
        "    value: 1\n"
        "    channels: [nowhere]\n"
    )
    result = _cli(clients, "apply", "-f", str(unknown_channel))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{unknown_channel}:8:" in result.stderr
    assert "alert_rules[0].channels[0]" in result.stderr
    assert _revision(clients) == before


def test_apply_is_all_or_nothing(clients: Clients, tmp_path: Path) -> None:
    before = _revision(clients)
    half = tmp_path / "half.yaml"
    # The first object is fine; the channel after it is refused by the outbound policy.
    half.write_text(
        "version: 1\n"
        "environments:\n"
        "  development:\n"
        "    domain: changed.example.app\n"
        "channels:\n"
        "  - name: metadata\n"
        "    kind: webhook\n"
        "    config: {url: 'http://169.254.169.254/latest'}\n"
    )
    result = _cli(clients, "apply", "-f", str(half))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "channels[0]" in result.stderr
    assert _revision(clients) == before
    with clients.as_role("admin") as admin:
        assert admin.get("/api/v1/environments/development").json()["domain"] != (
            "changed.example.app"
        )


def test_a_credential_written_in_the_file_is_refused(clients: Clients, tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(
        "version: 1\n"
        "environments:\n"
        "  production:\n"
        "    domain: example.app\n"
        "    config:\n"
        "      database_url: postgresql://app:hunter2@db/app\n"
        "      resend_api_key: re_live_123\n"
        "      redis_url: redis://:${REDIS_PASSWORD}@cache:6379/0\n"
    )
    result = _cli(clients, "diff", "-f", str(leaky), env={"REDIS_PASSWORD": "pw"})
    assert result.returncode == 2
    assert f"{leaky}:6:21: environments.production.config.database_url" in result.stderr
    assert "${PRODUCTION_DATABASE_URL}" in result.stderr
    assert f"{leaky}:7:23: environments.production.config.resend_api_key" in result.stderr
    # A URL whose password is a reference is fine.
    assert "redis_url" not in result.stderr


def test_expect_revision_refuses_when_someone_changed_it(clients: Clients) -> None:
    stale = _revision(clients)
    with clients.as_role("admin") as admin:
        response = admin.patch("/api/v1/environments/development", json={"domain": "d2.example"})
        assert response.status_code == 200, response.text
    result = _cli(
        clients, "apply", "-f", str(EXAMPLE), "--expect-revision", stale, env=EXAMPLE_VARS
    )
    assert result.returncode == 1
    assert "changed since revision" in result.stderr
    current = _revision(clients)
    result = _cli(
        clients, "apply", "-f", str(EXAMPLE), "--expect-revision", current, env=EXAMPLE_VARS
    )
    assert result.returncode == 0, result.stderr


def test_prune_deletes_rules_and_channels_the_file_no_longer_names(
    clients: Clients, tmp_path: Path
) -> None:
    assert _cli(clients, "apply", "-f", str(EXAMPLE), env=EXAMPLE_VARS).returncode == 0
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text("version: 1\n")
    kept = _cli(clients, "diff", "-f", str(smaller))
    assert kept.returncode == 0, kept.stdout
    assert "(--prune deletes it)" in kept.stdout
    plan = _cli(clients, "apply", "-f", str(smaller), "--prune", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "- alert_rule production p95 latency" in plan.stdout
    assert "dry run" in plan.stdout
    with clients.as_role("admin") as admin:
        assert len(admin.get("/api/v1/alert-rules").json()["items"]) == 2
    pruned = _cli(clients, "apply", "-f", str(smaller), "--prune")
    assert pruned.returncode == 0, pruned.stderr
    with clients.as_role("admin") as admin:
        assert admin.get("/api/v1/alert-rules").json()["items"] == []
        assert admin.get("/api/v1/notification-channels").json()["items"] == []
        # Environments are never pruned.
        assert len(admin.get("/api/v1/environments").json()["items"]) == 3


@pytest.mark.parametrize("role", ["viewer", "deployer", "service"])
def test_the_configuration_api_is_for_admins(clients: Clients, role: str) -> None:
    with clients.as_role(role) as client:
        assert client.get("/api/v1/config").status_code == 403
        body = {"document": {"version": 1}}
        assert client.post("/api/v1/config/diff", json=body).status_code == 403
        assert client.post("/api/v1/config/apply", json=body).status_code == 403


def test_the_api_names_the_path_of_a_bad_value(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.post(
            "/api/v1/config/apply",
            json={
                "document": {"version": 1, "channels": [{"name": "x", "kind": "carrier-pigeon"}]}
            },
        )
    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["errors"]]
    assert ["document", "channels", 0, "kind"] in locs


def test_values_from_references_never_reach_the_output(clients: Clients, tmp_path: Path) -> None:
    # A file in a pull request could name any variable of the CI job in a plain field.
    sneaky = tmp_path / "sneaky.yaml"
    sneaky.write_text(
        "version: 1\n"
        "environments:\n"
        "  development:\n"
        "    domain: dev.example.app\n"
        "    config: {region: '${CI_DEPLOY_KEY}'}\n"
    )
    ci_secret = "ci-deploy-key-77f3"
    for extra in ([], ["--json"]):
        result = _cli(clients, "diff", "-f", str(sneaky), *extra, env={"CI_DEPLOY_KEY": ci_secret})
        assert result.returncode == 1, result.stdout + result.stderr
        assert ci_secret not in result.stdout
        assert "config.region" in result.stdout


def test_stored_configuration_that_is_not_an_object_is_replaced_by_apply(
    clients: Clients, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE environments SET config = :c, limits = :l WHERE name = 'development'"),
            {"c": json.dumps(["edited", "by", "hand"]), "l": json.dumps("x")},
        )
    with clients.as_role("admin") as admin:
        assert admin.get("/api/v1/config").status_code == 200
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        "version: 1\nenvironments:\n  development:\n    domain: dev.example.app\n"
        "    config: {api_rate_limit: 60}\n"
    )
    result = _cli(clients, "apply", "-f", str(fixed))
    assert result.returncode == 0, result.stdout + result.stderr
    with clients.as_role("admin") as admin:
        development = admin.get("/api/v1/environments/development").json()
    assert development["config"] == {"api_rate_limit": 60}
    assert development["limits"] == {}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("environments", "p", "config", "database_url"), "postgresql://a:pw@db/app", True),
        (("environments", "p", "config", "redis_url"), "redis://:@cache:6379/0", False),
        (("channels", 0, "config", "url"), "https://hooks.slack.com/services/T0/B0/xyz", True),
        (("channels", 0, "config", "url"), "https://hooks.example.net/x?token=abc", True),
        (("channels", 0, "config", "url"), "https://hooks.example.net/shipboard", False),
        (("environments", "p", "config", "resend_api_key"), "re_123", True),
        (("environments", "p", "config", "stripe_publishable_key"), "pk_live", False),
        (("integrations", "github", "secret"), "s", True),
    ],
)
def test_credentials_are_what_the_one_redaction_hides(
    path: tuple[str | int, ...], value: str, expected: bool
) -> None:
    assert credentials.is_credential(path, value) is expected
