"""``Client``: the transport plus one typed method per API operation the CLI and pipelines use."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipboard.client.errors import ServerUnreachable, validated
from shipboard.client.transport import Transport
from shipboard.core.errors import InvalidInput, ShipboardError
from shipboard.deployments.schemas import (
    Accepted,
    DeploymentCreate,
    DeploymentDetail,
    DeploymentLogCreate,
    DeploymentLogPage,
    DeploymentLogRead,
    DeploymentPage,
    StatusUpdate,
)
from shipboard.performance.schemas import IngestResult


class Client(Transport):
    """A Shipboard API client; use it as a context manager so its connections are closed."""

    # --- deployments ----------------------------------------------------------------------

    def create_deployment(
        self,
        environment: str,
        version: str,
        commit_sha: str,
        *,
        commit_timestamp: str | None = None,
        logs_url: str | None = None,
        artifacts_url: str | None = None,
        force: bool = False,
    ) -> DeploymentDetail:
        """Create a deployment (the gates decide; GateBlocked arrives as ApiError 422)."""
        body = validated(
            DeploymentCreate,
            {
                "environment": environment,
                "version": version,
                "commit_sha": commit_sha,
                "commit_timestamp": commit_timestamp,
                "logs_url": logs_url,
                "artifacts_url": artifacts_url,
                "force": force,
            },
        )
        data = self.request("POST", "/api/v1/deployments", json=body)
        return DeploymentDetail.model_validate(data)

    def get_deployment(self, deployment_id: uuid.UUID | str) -> DeploymentDetail:
        return DeploymentDetail.model_validate(self.get(f"/api/v1/deployments/{deployment_id}"))

    def list_deployments(
        self,
        *,
        environment: str | None = None,
        status: str | None = None,
        triggered_by: str | None = None,
        commit_sha: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeploymentPage:
        """One page of deployments, newest first."""
        params = {
            "environment": environment,
            "status": status,
            "triggered_by": triggered_by,
            "commit_sha": commit_sha,
            "since": since,
            "until": until,
            "limit": limit,
            "cursor": cursor,
        }
        data = self.get(
            "/api/v1/deployments", params={k: v for k, v in params.items() if v is not None}
        )
        return DeploymentPage.model_validate(data)

    def report_status(
        self,
        deployment_id: uuid.UUID | str,
        status: str,
        *,
        error_message: str | None = None,
        build_time: int | None = None,
        deploy_time: int | None = None,
    ) -> DeploymentDetail:
        """Advance a reported deployment: building, deploying, success or failed."""
        body = validated(
            StatusUpdate,
            {
                "status": status,
                "error_message": error_message,
                "build_time": build_time,
                "deploy_time": deploy_time,
            },
        )
        data = self.request("POST", f"/api/v1/deployments/{deployment_id}/status", json=body)
        return DeploymentDetail.model_validate(data)

    def cancel(self, deployment_id: uuid.UUID | str) -> DeploymentDetail:
        data = self.request("POST", f"/api/v1/deployments/{deployment_id}/cancel")
        return DeploymentDetail.model_validate(data)

    def approve(self, deployment_id: uuid.UUID | str) -> DeploymentDetail:
        data = self.request("POST", f"/api/v1/deployments/{deployment_id}/approve")
        return DeploymentDetail.model_validate(data)

    def rollback(
        self,
        deployment_id: uuid.UUID | str | None = None,
        *,
        environment: str | None = None,
        force: bool = False,
    ) -> DeploymentDetail:
        """Roll back the deployment serving now (by ID, or ``environment``'s); the new one.

        ``force`` (admins only) skips approval and freezes.
        """
        if (deployment_id is None) == (environment is None):
            raise InvalidInput("give either a deployment ID or an environment")
        path = (
            f"/api/v1/environments/{environment}/rollback"
            if environment
            else f"/api/v1/deployments/{deployment_id}/rollback"
        )
        body = {"force": True} if force else None
        return DeploymentDetail.model_validate(self.request("POST", path, json=body))

    def logs(
        self,
        deployment_id: uuid.UUID | str,
        *,
        level: str | None = None,
        cursor: str | None = None,
        limit: int = 500,
    ) -> DeploymentLogPage:
        """One page of a deployment's log lines, oldest first."""
        params: dict[str, Any] = {"limit": limit}
        if level:
            params["level"] = level
        if cursor:
            params["cursor"] = cursor
        data = self.get(f"/api/v1/deployments/{deployment_id}/logs", params=params)
        return DeploymentLogPage.model_validate(data)

    def add_logs(
        self, deployment_id: uuid.UUID | str, lines: list[DeploymentLogCreate | dict[str, Any]]
    ) -> int:
        """Append log lines to a deployment you report; how many were stored."""
        body = [
            line.model_dump(mode="json", exclude_none=True)
            if isinstance(line, DeploymentLogCreate)
            else line
            for line in lines
        ]
        data = self.request(
            "POST", f"/api/v1/deployments/{deployment_id}/logs", json={"logs": body}
        )
        return Accepted.model_validate(data).accepted

    def follow(
        self,
        deployment_id: uuid.UUID | str,
        *,
        on_log: Callable[[DeploymentLogRead], None] | None = None,
    ) -> str:
        """Stream a deployment's log lines (to ``on_log``) until it ends; its final status.

        A dropped stream is reopened (the server replays from the start; lines already seen
        are skipped)."""
        seen: set[uuid.UUID] = set()
        failures = 0
        path = f"/api/v1/deployments/{deployment_id}/logs/stream"
        while True:
            error: ShipboardError
            try:
                for event, data in self.events(path):
                    failures = 0
                    if event == "log":
                        line = DeploymentLogRead.model_validate_json(data)
                        if line.id not in seen:
                            seen.add(line.id)
                            if on_log is not None:
                                on_log(line)
                    elif event == "end":
                        return str(json.loads(data)["status"])
                error = ServerUnreachable("the log stream ended before the deployment did")
            except ServerUnreachable as exc:
                error = exc
            if failures >= self.retries:
                raise error
            time.sleep(self._backoff(failures))
            failures += 1

    def wait_for_deployment(
        self,
        deployment_id: uuid.UUID | str,
        *,
        on_log: Callable[[DeploymentLogRead], None] | None = None,
    ) -> DeploymentDetail:
        """Follow a deployment to its end (success, failed or rolled back) and return it."""
        self.follow(deployment_id, on_log=on_log)
        return self.get_deployment(deployment_id)

    # --- metrics, scans, benchmarks, reports ----------------------------------------------

    def push_metrics(
        self, points: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> int:
        """Push up to 10,000 points ``{name, value, environment, source, timestamp?, tags?}``;
        with an ``idempotency_key`` a retried batch is stored once."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = self.request("POST", "/api/v1/metrics", json={"metrics": points}, headers=headers)
        return Accepted.model_validate(data).accepted

    def push_performance(self, metrics: list[dict[str, Any]]) -> IngestResult:
        """Store benchmark results ``{name, environment, value, unit, …}``; each series judged."""
        data = self.request("POST", "/api/v1/performance/metrics", json={"metrics": metrics})
        return IngestResult.model_validate(data)

    def import_scan(
        self,
        path: str | Path,
        environment: str,
        *,
        scan_type: str | None = None,
        tool: str | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Import a SARIF or native scanner report: the scan, counts of new/resolved/reopened.
        ``target``: what was scanned; findings resolve only against scans of the same target."""
        form = {"environment": environment}
        if scan_type:
            form["type"] = scan_type
        if tool:
            form["tool"] = tool
        if target:
            form["target"] = target
        result: dict[str, Any] = self._upload("/api/v1/security/scans/import", path, form)
        return result

    def import_performance(
        self,
        path: str | Path,
        environment: str,
        *,
        version: str | None = None,
        commit_sha: str | None = None,
    ) -> IngestResult:
        """Import pytest-benchmark JSON, a k6 summary or CSV; each series' verdict."""
        form = {"environment": environment}
        if version:
            form["version"] = version
        if commit_sha:
            form["commit_sha"] = commit_sha
        return IngestResult.model_validate(self._upload("/api/v1/performance/import", path, form))

    def report(self, name: str, **params: Any) -> dict[str, Any]:
        """A report as JSON: ``dora``, ``security``, ``monitoring`` or ``performance``."""
        query = {k: v for k, v in params.items() if v is not None}
        data: dict[str, Any] = self.get(f"/api/v1/reports/{name}", params=query)
        return data
