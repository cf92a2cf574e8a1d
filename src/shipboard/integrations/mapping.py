"""What a GitHub or GitLab webhook means for a deployment. Pure: no I/O, tested without a server.

The service verifies the request, parses the JSON and hands the payload here; this module says
which deployment (the provider's id is the key), in which of our environments, and which of our
states it asks for, or why the event is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from shipboard.core import patterns
from shipboard.core.errors import InvalidInput
from shipboard.deployments import state
from shipboard.environments.naming import find_environment

# GitHub's deployment_status.state -> ours; None: no change (`inactive` marks an older deployment
# that a newer one replaced, which says nothing about how this one went).
GITHUB_STATES: dict[str, str | None] = {
    "queued": "pending",
    "pending": "pending",
    "waiting": "pending",
    "in_progress": "deploying",
    "success": "success",
    "failure": "failed",
    "error": "failed",
    "inactive": None,
}
# GitLab's deployment status -> (ours, error message).
GITLAB_STATUSES: dict[str, tuple[str, str | None]] = {
    "running": ("deploying", None),
    "success": ("success", None),
    "failed": ("failed", None),
    "canceled": ("failed", "canceled in GitLab"),
}
# How far along a deployment is. A webhook may move it forward only: events arrive out of order
# and are redelivered, and a finished deployment stays finished.
PROGRESS = {
    "pending": 0,
    "building": 1,
    "deploying": 2,
    "success": 3,
    "failed": 3,
    "rolled_back": 4,
}
# The provider's word (as kept in the link row) for a deployment someone stopped: recorded as
# failed, since our states have no other ending, but a person's decision is no change failure,
# so DORA leaves it out (reports/service.py).
CANCELLED_STATES = frozenset({"completed/cancelled", "canceled"})
DEFAULT_DEPLOY_WORKFLOW = "*deploy*"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_GITLAB_COMMIT = re.compile(r"/commit/([0-9a-fA-F]{7,40})(?:[/?#]|$)")
_NOT_VERSION_CHARS = re.compile(r"[^0-9A-Za-z.+_-]+")
_URL = re.compile(r"^https?://\S{1,2040}$")


@dataclass(frozen=True)
class Settings:
    """What the mapping needs from an integration's configuration."""

    environments: frozenset[str]
    env_map: dict[str, str]
    deploy_workflow: str = DEFAULT_DEPLOY_WORKFLOW
    workflow_environment: str = "production"


@dataclass(frozen=True)
class Ignore:
    """The event is understood but is not about a deployment Shipboard records."""

    reason: str


@dataclass(frozen=True)
class Ping:
    """GitHub's hello when a webhook is created: proof that the secret matches."""

    reason: str


@dataclass(frozen=True)
class DeploymentEvent:
    """A provider's deployment, in our terms."""

    external_id: str
    their_environment: str
    environment: str
    version: str
    commit_sha: str
    triggered_by: str
    # Our state to reach; None records the deployment (as pending) without moving it.
    target: str | None
    # The provider's own word, for messages and the link row.
    their_state: str
    logs_url: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    happened_at: datetime | None = None
    commit_timestamp: datetime | None = None
    # The key before ids were scoped by host and repository: a link recorded under it (before
    # the upgrade) is taken over when its commit matches, so a deployment in flight goes on.
    legacy_id: str | None = None


Meaning = DeploymentEvent | Ignore | Ping


# --- authentication -------------------------------------------------------------------------


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``X-Hub-Signature-256`` over the raw body bytes."""
    if not header:
        return False
    # Header values arrive decoded as latin-1; encoding back gives the bytes that were sent.
    return hmac.compare_digest(
        github_signature(secret, body).encode(), header.strip().encode("latin-1")
    )


def verify_gitlab_token(secret: str, header: str | None) -> bool:
    """Constant-time check of ``X-Gitlab-Token``."""
    if header is None:
        return False
    return hmac.compare_digest(secret.encode(), header.encode("latin-1"))


# --- the never-backwards rule ---------------------------------------------------------------


def steps(current: str, target: str | None) -> list[str]:
    """The transitions that take a deployment from ``current`` to ``target``, or none when the
    target is not ahead of where it is (a stale, repeated or contradicting event)."""
    if target is None or PROGRESS[target] <= PROGRESS[current]:
        return []
    # The shortest walk through the state machine, so that every transition Shipboard records
    # for an external deployment is one it allows for its own (pending -> building -> deploying
    # -> success), each with its log line.
    queue: deque[list[str]] = deque([[current]])
    seen = {current}
    while queue:
        walk = queue.popleft()
        for nxt in sorted(state.TRANSITIONS[walk[-1]]):
            if nxt == target:
                return [*walk[1:], nxt]
            if nxt not in seen:
                seen.add(nxt)
                queue.append([*walk, nxt])
    return []


# --- environments, versions -----------------------------------------------------------------


def map_environment(name: str, settings: Settings) -> str | None:
    """Ours for their ``name``: the map first (exact, then ignoring case), else the same name
    when it is one of ours (ignoring case: GitHub users often write `Production`)."""
    if name in settings.env_map:
        return settings.env_map[name]
    folded = name.casefold()
    for theirs, ours in settings.env_map.items():
        if theirs.casefold() == folded:
            return ours
    return find_environment(name, settings.environments)


def unmapped(kind: str, name: str, settings: Settings) -> Ignore:
    ours = ", ".join(sorted(settings.environments))
    return Ignore(
        f"{kind} environment {name!r} is not one of Shipboard's ({ours}) and is not in the "
        f"integration's env map; map it with `shipboard integrations add {kind} "
        f"--env-map '{name}=<ours>'` to record it"
    )


def version_from(ref: Any, sha: str, *, short: Any = None) -> str:
    """A Shipboard version for a deployment of ``ref`` at ``sha``: the ref (tag or branch, with
    characters a version may not hold replaced), else the short sha."""
    if isinstance(ref, str) and ref and ref.lower() != sha.lower():
        name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        name = _NOT_VERSION_CHARS.sub("-", name).strip("-.+_")[:128]
        if _VERSION.match(name):
            return name
    if isinstance(short, str) and _VERSION.match(short):
        return short
    return sha[:12].lower()


def glob_matches(name: str, pattern: str) -> bool:
    """A shell glob, ignoring case (`Deploy production` matches `*deploy*`), in linear time."""
    return patterns.glob_matches(pattern, name, ignore_case=True)


# --- GitHub ---------------------------------------------------------------------------------


def github_event(event: str | None, payload: dict[str, Any], settings: Settings) -> Meaning:
    """Read a GitHub webhook (``X-GitHub-Event`` and its JSON body)."""
    if event == "ping":
        return Ping("ping: the webhook reaches Shipboard and its secret matches")
    if event == "deployment":
        return _github_deployment(payload, settings, status=None)
    if event == "deployment_status":
        status = _object(payload, "deployment_status")
        return _github_deployment(payload, settings, status=status)
    if event == "workflow_run":
        return _github_workflow_run(payload, settings)
    return Ignore(
        f"GitHub event {event!r} is not handled; Shipboard records deployment, "
        "deployment_status and workflow_run events"
    )


def _github_deployment(
    payload: dict[str, Any], settings: Settings, *, status: dict[str, Any] | None
) -> Meaning:
    deployment = _object(payload, "deployment")
    deployment_id = _required(deployment, "deployment", "id", (int, str))
    their_env = str(_required(deployment, "deployment", "environment", str))
    ours = map_environment(their_env, settings)
    if ours is None:
        return unmapped("github", their_env, settings)
    sha = _sha(_required(deployment, "deployment", "sha", str), "deployment.sha")
    extra = deployment.get("payload")
    version = None
    if isinstance(extra, dict) and isinstance(extra.get("version"), str):
        version = extra["version"] if _VERSION.match(extra["version"]) else None
    creator = deployment.get("creator") or payload.get("sender") or {}
    created_at = _time(deployment.get("created_at"))
    common: dict[str, Any] = {
        "external_id": f"{_github_scope(payload)}/deployments/{deployment_id}",
        "legacy_id": str(deployment_id),
        "their_environment": their_env,
        "environment": ours,
        "version": version or version_from(deployment.get("ref"), sha),
        "commit_sha": sha,
        "triggered_by": _login(creator),
        "created_at": created_at,
    }
    if status is None:
        return DeploymentEvent(**common, target=None, their_state="created", happened_at=created_at)
    their_state = str(_required(status, "deployment_status", "state", str))
    if their_state not in GITHUB_STATES:
        return Ignore(f"GitHub deployment state {their_state!r} is not one Shipboard maps")
    target = GITHUB_STATES[their_state]
    error = None
    if target == "failed":
        description = status.get("description")
        error = (
            f"GitHub reported {their_state}: {description}"
            if isinstance(description, str) and description.strip()
            else f"GitHub reported {their_state}"
        )
    return DeploymentEvent(
        **common,
        target=target,
        their_state=their_state,
        logs_url=_url(status.get("log_url")) or _url(status.get("target_url")),
        error_message=error,
        happened_at=_time(status.get("created_at")) or _time(status.get("updated_at")),
    )


def _github_workflow_run(payload: dict[str, Any], settings: Settings) -> Meaning:
    action = payload.get("action")
    run = _object(payload, "workflow_run")
    workflow = payload.get("workflow") if isinstance(payload.get("workflow"), dict) else {}
    name = str(run.get("name") or (workflow or {}).get("name") or run.get("path") or "")
    if action != "completed":
        return Ignore(f"workflow_run {action!r}: only completed runs are recorded")
    if not glob_matches(name, settings.deploy_workflow):
        return Ignore(
            f"workflow {name!r} does not match the deploy_workflow pattern "
            f"{settings.deploy_workflow!r}"
        )
    run_id = _required(run, "workflow_run", "id", (int, str))
    sha = _sha(_required(run, "workflow_run", "head_sha", str), "workflow_run.head_sha")
    ours = workflow_environment(name, settings)
    conclusion = run.get("conclusion")
    succeeded = conclusion == "success"
    error = None if succeeded else f"workflow run {name!r} concluded {conclusion}"
    if f"completed/{conclusion}" in CANCELLED_STATES:
        error = f"cancelled in GitHub: {error}"
    head_commit = run.get("head_commit") if isinstance(run.get("head_commit"), dict) else {}
    actor = run.get("triggering_actor") or run.get("actor") or payload.get("sender") or {}
    return DeploymentEvent(
        # A re-run keeps the run's id but is another deployment.
        external_id=(
            f"{_github_scope(payload)}/actions/runs/{run_id}/attempts/{run.get('run_attempt') or 1}"
        ),
        legacy_id=f"workflow_run:{run_id}:{run.get('run_attempt') or 1}",
        their_environment=name,
        environment=ours,
        version=version_from(run.get("head_branch"), sha),
        commit_sha=sha,
        triggered_by=_login(actor),
        target="success" if succeeded else "failed",
        their_state=f"completed/{conclusion}",
        logs_url=_url(run.get("html_url")),
        error_message=error,
        created_at=_time(run.get("run_started_at")) or _time(run.get("created_at")),
        happened_at=_time(run.get("updated_at")),
        commit_timestamp=_time((head_commit or {}).get("timestamp")),
    )


def workflow_environment(name: str, settings: Settings) -> str:
    """Where a deploy workflow deploys to: its name in the env map; else the one environment of
    ours its name mentions (`Deploy to staging`); else the integration's workflow_environment."""
    folded = name.casefold()
    for theirs, ours in settings.env_map.items():
        if theirs.casefold() == folded:
            return ours
    words = set(re.split(r"[^0-9a-z]+", folded))
    named = [ours for ours in settings.environments if ours.casefold() in words]
    return named[0] if len(named) == 1 else settings.workflow_environment


# --- GitLab ---------------------------------------------------------------------------------


def gitlab_event(event: str | None, payload: dict[str, Any], settings: Settings) -> Meaning:
    """Read a GitLab webhook (``X-Gitlab-Event`` and its JSON body)."""
    kind = payload.get("object_kind")
    if kind != "deployment":
        return Ignore(
            f"GitLab {event or kind!r} events are not handled; Shipboard records Deployment Hook "
            "events (turn on 'Deployment events' for this webhook)"
        )
    deployment_id = _required(payload, "", "deployment_id", (int, str))
    their_env = str(_required(payload, "", "environment", str))
    ours = map_environment(their_env, settings)
    if ours is None:
        return unmapped("gitlab", their_env, settings)
    status = str(_required(payload, "", "status", str))
    if status not in GITLAB_STATUSES:
        return Ignore(f"GitLab deployment status {status!r} is not one Shipboard maps")
    target, error = GITLAB_STATUSES[status]
    commit_url = str(_required(payload, "", "commit_url", str))
    found = _GITLAB_COMMIT.search(commit_url)
    if found is None:
        raise InvalidInput(
            "commit_url holds no commit sha",
            errors=[{"loc": ["body", "commit_url"], "msg": "expected …/commit/<sha>"}],
        )
    sha = found.group(1).lower()
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    happened = _time(payload.get("status_changed_at"))
    return DeploymentEvent(
        external_id=f"{_gitlab_scope(payload)}/deployments/{deployment_id}",
        legacy_id=str(deployment_id),
        their_environment=their_env,
        environment=ours,
        version=version_from(payload.get("ref"), sha, short=payload.get("short_sha")),
        commit_sha=sha,
        triggered_by=str((user or {}).get("username") or (user or {}).get("name") or "gitlab")[
            :255
        ],
        target=target,
        their_state=status,
        logs_url=_url(payload.get("deployable_url")),
        error_message=error,
        created_at=happened,
        happened_at=happened,
    )


# --- scoping ids ----------------------------------------------------------------------------
# A provider's deployment id is unique within one repository (GitLab: project) on one host only:
# the key is host and repository too, shaped like the provider's own API path. The repository's
# numeric id, not its name, so a rename half-way through a deployment changes nothing.


def _github_scope(payload: dict[str, Any]) -> str:
    repository = _object(payload, "repository")
    repo_id = _required(repository, "repository", "id", (int, str))
    return f"{_host(repository, 'repository', 'html_url')}/repositories/{repo_id}"


def _gitlab_scope(payload: dict[str, Any]) -> str:
    project = _object(payload, "project")
    project_id = _required(project, "project", "id", (int, str))
    return f"{_host(project, 'project', 'web_url')}/projects/{project_id}"


def _host(obj: dict[str, Any], where: str, key: str) -> str:
    url = _required(obj, where, key, str)
    host = urlsplit(url).netloc.rpartition("@")[2].lower() if _URL.match(url) else ""
    if not host:
        raise InvalidInput(
            f"{where}.{key} is not an http(s) URL",
            errors=[{"loc": ["body", where, key], "msg": "expected an http(s) URL"}],
        )
    return host


# --- reading payloads -----------------------------------------------------------------------


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise InvalidInput(
            f"payload has no {key} object",
            errors=[{"loc": ["body", key], "msg": "expected an object"}],
        )
    return value


def _required(obj: dict[str, Any], where: str, key: str, kinds: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    path = f"{where}.{key}" if where else key
    if value is None or isinstance(value, bool) or not isinstance(value, kinds) or value == "":
        raise InvalidInput(
            f"payload has no usable {path}",
            errors=[{"loc": ["body", *path.split(".")], "msg": "missing or of the wrong type"}],
        )
    return value


def _sha(value: str, path: str) -> str:
    if not _SHA.match(value):
        raise InvalidInput(
            f"{path} is not a commit sha",
            errors=[{"loc": ["body", *path.split(".")], "msg": "expected 7-40 hex characters"}],
        )
    return value.lower()


def _login(user: Any) -> str:
    if isinstance(user, dict):
        for key in ("login", "username", "name"):
            if isinstance(user.get(key), str) and user[key]:
                return str(user[key])[:255]
    return "github"


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and _URL.match(value) else None


def _time(value: Any) -> datetime | None:
    """GitHub's ISO 8601 (`2019-05-15T15:20:53Z`) or GitLab's `2021-04-28 21:50:00 +0200`."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    for layout in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S UTC"):
        if moment is not None:
            break
        try:
            moment = datetime.strptime(value, layout)
        except ValueError:
            continue
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
