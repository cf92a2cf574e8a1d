"""The pure webhook mapping: states, never backwards, environments, versions, signatures."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipboard.core.errors import InvalidInput
from shipboard.deployments import state
from shipboard.integrations import mapping
from tests.support.paths import FIXTURES as FIXTURES_ROOT

FIXTURES = FIXTURES_ROOT / "integrations"
OURS = frozenset({"development", "staging", "production"})
SETTINGS = mapping.Settings(environments=OURS, env_map={})
STATES = tuple(mapping.PROGRESS)


def _payload(name: str) -> dict[str, object]:
    return dict(json.loads((FIXTURES / name).read_bytes()))


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("queued", "pending"),
        ("pending", "pending"),
        ("waiting", "pending"),
        ("in_progress", "deploying"),
        ("success", "success"),
        ("failure", "failed"),
        ("error", "failed"),
        ("inactive", None),
    ],
)
def test_github_states_map_as_documented(theirs: str, ours: str | None) -> None:
    payload = _payload("github/deployment_status.created.payload.json")
    payload["deployment_status"]["state"] = theirs  # type: ignore[index]
    event = mapping.github_event("deployment_status", payload, SETTINGS)
    assert isinstance(event, mapping.DeploymentEvent)
    assert event.target == ours


@pytest.mark.parametrize(
    ("theirs", "ours", "error"),
    [
        ("running", "deploying", None),
        ("success", "success", None),
        ("failed", "failed", None),
        ("canceled", "failed", "canceled in GitLab"),
    ],
)
def test_gitlab_statuses_map_as_documented(theirs: str, ours: str, error: str | None) -> None:
    payload = _payload("gitlab/deployment.success.gitlab-docs.json")
    payload["status"] = theirs
    event = mapping.gitlab_event("Deployment Hook", payload, SETTINGS)
    assert isinstance(event, mapping.DeploymentEvent)
    assert (event.target, event.error_message) == (ours, error)
    assert event.commit_sha == "279484c09fbe69ededfced8c1bb6e6d24616b468"


def test_steps_walk_forward_through_allowed_transitions() -> None:
    assert mapping.steps("pending", "success") == ["building", "deploying", "success"]
    assert mapping.steps("pending", "deploying") == ["building", "deploying"]
    assert mapping.steps("pending", "failed") == ["failed"]
    assert mapping.steps("building", "success") == ["deploying", "success"]
    assert mapping.steps("deploying", "failed") == ["failed"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("success", "deploying"),
        ("success", "pending"),
        ("success", "failed"),
        ("failed", "success"),
        ("deploying", "pending"),
        ("deploying", "deploying"),
        ("rolled_back", "success"),
        ("pending", None),
    ],
)
def test_steps_never_move_backwards_or_between_endings(current: str, target: str | None) -> None:
    assert mapping.steps(current, target) == []


@given(st.lists(st.sampled_from(["pending", "deploying", "success", "failed"]), max_size=8))
def test_any_order_of_events_only_moves_forward(targets: list[str]) -> None:
    current = "pending"
    for target in targets:
        walk = mapping.steps(current, target)
        for step in walk:
            state.check_transition(current, step)
            assert mapping.PROGRESS[step] > mapping.PROGRESS[current]
            current = step


def test_environment_map_then_identity_ignoring_case() -> None:
    settings = mapping.Settings(environments=OURS, env_map={"github-pages": "staging"})
    assert mapping.map_environment("github-pages", settings) == "staging"
    assert mapping.map_environment("GitHub-Pages", settings) == "staging"
    assert mapping.map_environment("Production", settings) == "production"
    assert mapping.map_environment("preview", settings) is None


def test_unmapped_environment_is_ignored_with_the_fix() -> None:
    payload = _payload("github/deployment_status.created.gh-pages.payload.json")
    meaning = mapping.github_event("deployment_status", payload, SETTINGS)
    assert isinstance(meaning, mapping.Ignore)
    assert "--env-map 'github-pages=<ours>'" in meaning.reason


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("v1.2.3", "v1.2.3"),
        ("refs/tags/v2.0.0", "v2.0.0"),
        ("refs/heads/feature/login", "feature-login"),
        ("main", "main"),
        ("f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "f95f852bd8fc"),
        (None, "f95f852bd8fc"),
        ("///", "f95f852bd8fc"),
    ],
)
def test_version_from_ref_or_short_sha(ref: str | None, version: str) -> None:
    assert mapping.version_from(ref, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e") == version


def test_github_deployment_payload_version_wins() -> None:
    payload = _payload("github/deployment.created.payload.json")
    payload["deployment"]["payload"] = {"version": "2.4.0"}  # type: ignore[index]
    event = mapping.github_event("deployment", payload, SETTINGS)
    assert isinstance(event, mapping.DeploymentEvent)
    assert event.version == "2.4.0"


def test_workflow_run_environment_from_map_name_or_default() -> None:
    settings = mapping.Settings(
        environments=OURS, env_map={"Ship it": "development"}, workflow_environment="staging"
    )
    assert mapping.workflow_environment("Ship it", settings) == "development"
    assert mapping.workflow_environment("Deploy to production", settings) == "production"
    assert mapping.workflow_environment("deploy", settings) == "staging"
    # Naming two environments says nothing clear: the default applies.
    assert mapping.workflow_environment("deploy staging then production", settings) == "staging"


def test_workflow_run_glob_ignores_case() -> None:
    assert mapping.glob_matches("Deploy Production", "*deploy*")
    assert not mapping.glob_matches("test", "*deploy*")


def test_signatures_are_checked_over_the_exact_bytes() -> None:
    body = b'{"zen": "x"}'
    good = mapping.github_signature("s3cret", body)
    assert mapping.verify_github_signature("s3cret", body, good)
    assert not mapping.verify_github_signature("s3cret", body + b"\n", good)
    assert not mapping.verify_github_signature("other", body, good)
    assert not mapping.verify_github_signature("s3cret", body, good.replace("sha256=", "sha1="))
    assert not mapping.verify_github_signature("s3cret", body, None)
    assert not mapping.verify_github_signature("s3cret", body, "sha256=é")
    assert mapping.verify_gitlab_token("tøken", "tøken".encode().decode("latin-1"))
    assert not mapping.verify_gitlab_token("token", None)
    assert not mapping.verify_gitlab_token("token", "")


def test_payloads_missing_what_they_need_are_invalid() -> None:
    with pytest.raises(InvalidInput, match="deployment"):
        mapping.github_event("deployment", {"action": "created"}, SETTINGS)
    payload = _payload("gitlab/deployment.success.gitlab-docs.json")
    payload["commit_url"] = "http://gitlab.example/root/x/-/tree/main"
    with pytest.raises(InvalidInput, match="commit_url"):
        mapping.gitlab_event("Deployment Hook", payload, SETTINGS)


def test_gitlab_time_format_is_read() -> None:
    payload = _payload("gitlab/deployment.success.gitlab-docs.json")
    event = mapping.gitlab_event("Deployment Hook", payload, SETTINGS)
    assert isinstance(event, mapping.DeploymentEvent)
    assert event.happened_at is not None
    assert event.happened_at.isoformat() == "2021-04-28T21:50:00+02:00"


def test_fixtures_are_the_unedited_copies_the_manifest_lists() -> None:
    manifest = (FIXTURES / "MANIFEST.md").read_text()
    rows = (line.split() for line in manifest.split("```")[1].splitlines() if line)
    listed = {name: digest for digest, name in rows}
    assert len(listed) == 8
    for name, digest in listed.items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name
