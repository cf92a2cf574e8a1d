"""The Python client of the Shipboard API (httpx, synchronous), used by the CLI and by pipelines.

    from shipboard.client import Client

    with Client("https://shipboard.example", token) as shipboard:
        deployment = shipboard.create_deployment("staging", "1.4.0", "9fceb02")
        final = shipboard.wait_for_deployment(deployment.id)

Typed methods return the API's own pydantic schemas where the API has one. Errors: ``ApiError``
(a problem response, with its ``status``), ``ServerUnreachable`` (no answer, after retries),
``NoToken``. Requests that may safely be sent twice (GET, PUT, DELETE, and POSTs carrying an
``Idempotency-Key``) are retried with backoff on network errors and on 502/503/504; any request
is retried when the connection could not even be opened, since then nothing was sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from shipboard import __version__
from shipboard.config import Settings, get_settings
from shipboard.core.errors import InvalidInput, ShipboardError, format_loc
from shipboard.core.terminal import console, printable
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

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_CAP_S = 8.0
# Uploads smaller than this finish before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 1024 * 1024


def segment(value: str) -> str:
    """A caller's value as one URL path segment, or a usage error (InvalidInput, exit 2).

    Servers route on the decoded path, so an encoded ``/`` would still reach another route:
    names with ``/``, ``.``/``..`` or control characters are refused here; the rest (``?``,
    ``#``, spaces) is percent-encoded."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InvalidInput(f"{value!r} contains control characters")
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise InvalidInput(f"{value!r} is not a name")
    return quote(value, safe="")


class ApiError(ShipboardError):
    """A problem response from the server, carried to the caller with its status."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        slug: str = "",
    ):
        super().__init__(detail, errors=errors)
        self.status = status
        self.slug = slug


@contextlib.contextmanager
def invalid_input_is_usage() -> Iterator[None]:
    """For commands that write configuration: a 422 ``invalid-input`` names a value given on the
    command line, so it ends the command as a usage error (exit 2), like a local check would."""
    try:
        yield
    except ApiError as exc:
        if exc.status == 422 and exc.slug == "invalid-input":
            raise InvalidInput(exc.detail, errors=exc.errors) from exc
        raise


class ServerUnreachable(ShipboardError):
    """No answer from the server: it is down, the URL is wrong, or the network failed."""


class NoToken(ShipboardError):
    """No API token configured."""


@dataclass
class _Defaults:
    """What the CLI's global options say, for every client the commands make."""

    url: str | None = None
    token: str | None = None
    progress: bool = False


_defaults = _Defaults()


def configure(
    *, url: str | None = None, token: str | None = None, progress: bool | None = None
) -> None:
    """Set the URL, token and progress display that ``Client.from_settings`` uses (the CLI's
    ``--url`` / ``--token``; unset values fall back to SHIPBOARD_URL / SHIPBOARD_TOKEN)."""
    if url is not None:
        _defaults.url = url
    if token is not None:
        _defaults.token = token
    if progress is not None:
        _defaults.progress = progress


class Client:
    """A Shipboard API client; use it as a context manager so its connections are closed."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        progress: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise NoToken(
                "no API token: set SHIPBOARD_TOKEN or pass --token "
                "(make one with `shipboard tokens create USER`)"
            )
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.progress = progress
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"shipboard-client/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Client:
        """A client for SHIPBOARD_URL / SHIPBOARD_TOKEN (or the CLI's --url / --token)."""
        settings = settings or get_settings()
        return cls(
            _defaults.url or settings.url,
            _defaults.token or settings.token,
            retries=settings.retries,
            progress=_defaults.progress,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    # --- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the JSON answer (None for 204), or ApiError for a problem response."""
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with retries; the response, or ApiError for a problem response."""
        method = method.upper()
        headers = kwargs.get("headers") or {}
        idempotent = method in IDEMPOTENT_METHODS or any(
            k.lower() == "idempotency-key" for k in headers
        )
        files = kwargs.get("files")
        with self._upload_progress(files) as wrapped:
            if wrapped is not None:
                kwargs["files"] = wrapped
            response = self._send_with_retries(method, path, idempotent=idempotent, **kwargs)
        if response.status_code >= 400:
            raise _problem(response)
        return response

    def _send_with_retries(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the server: trying again cannot do anything twice.
                if attempt >= self.retries:
                    raise self._unreachable(exc, attempt + 1) from exc
            except httpx.TransportError as exc:
                if not idempotent or attempt >= self.retries:
                    raise self._unreachable(exc, attempt + 1, sent=True) from exc
            else:
                if (
                    response.status_code not in RETRY_STATUSES
                    or not idempotent
                    or attempt >= self.retries
                ):
                    return response
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    time.sleep(min(float(retry_after), BACKOFF_CAP_S))
                    attempt += 1
                    continue
            time.sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        # Full jitter: many CI jobs retrying against one recovering server spread out.
        ceiling = min(BACKOFF_CAP_S, self.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy

    def _unreachable(
        self, exc: httpx.TransportError, attempts: int, *, sent: bool = False
    ) -> ServerUnreachable:
        what = "no answer from" if sent else "cannot reach"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        hint = "; the request may or may not have been applied" if sent else "; check SHIPBOARD_URL"
        return ServerUnreachable(
            f"{what} Shipboard at {self._http.base_url} ({type(exc).__name__}){tries}{hint}"
        )

    @contextlib.contextmanager
    def _upload_progress(self, files: Any) -> Iterator[Any]:
        if not self.progress or not isinstance(files, dict):
            yield None
            return
        sizes = {name: _size(value) for name, value in files.items()}
        total = sum(s for s in sizes.values() if s is not None)
        if total < PROGRESS_MIN_BYTES:
            yield None
            return
        with progress_bar(total, "uploading", enabled=True) as advance:
            wrapped = {}
            for name, value in files.items():
                if isinstance(value, tuple) and hasattr(value[1], "read"):
                    wrapped[name] = (value[0], _ProgressReader(value[1], advance), *value[2:])
                else:
                    wrapped[name] = value
            yield wrapped

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def text(self, path: str, **kwargs: Any) -> str:
        """A GET whose answer is not JSON (CSV, HTML), with the same errors as ``request``."""
        return self.send("GET", path, **kwargs).text

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def events(self, path: str) -> Iterator[tuple[str, str]]:
        """Server-Sent Events of ``path`` as (event, data) pairs."""
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as stream:
                if stream.status_code >= 400:
                    stream.read()
                    raise _problem(stream)
                event, data = "message", list[str]()
                for raw in stream.iter_lines():
                    if raw == "":
                        if data:
                            yield event, "\n".join(data)
                        event, data = "message", list[str]()
                    elif raw.startswith("event:"):
                        event = raw[6:].strip()
                    elif raw.startswith("data:"):
                        data.append(raw[5:].lstrip())
        except httpx.TransportError as exc:
            raise self._unreachable(exc, 1, sent=True) from exc

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
        body = _validated(
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
        body = _validated(
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

    def _upload(self, url: str, path: str | Path, form: dict[str, str]) -> Any:
        file = Path(path)
        if not file.is_file():
            raise InvalidInput(f"{file} is not a file")
        with file.open("rb") as handle:
            return self.request("POST", url, files={"file": (file.name, handle)}, data=form)


# Existing code and scripts know the client by this name.
ShipboardClient = Client


# --- progress -------------------------------------------------------------------------------


def progress_wanted(*, as_json: bool = False) -> bool:
    """Draw progress bars only for a person: standard output and error are terminals, and the
    output is not JSON meant for a script."""
    return not as_json and sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on standard error; yields ``advance(n)``. A no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(printable(description), total=total)
        yield lambda n: bar.advance(task, n)


class _ProgressReader:
    """A file wrapper that reports how much of it was read (httpx reads uploads in chunks, and
    seeks back to the start before a retry)."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._position += len(chunk)
        self._advance(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._advance(position - self._position)
        self._position = position
        return position

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()


def _size(value: Any) -> int | None:
    handle = value[1] if isinstance(value, tuple) and len(value) > 1 else value
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _validated(schema: Any, body: dict[str, Any]) -> dict[str, Any]:
    # Checked here with the API's own schema: a bad argument fails before anything is sent.
    try:
        model = schema.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        raise InvalidInput(
            "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ),
            errors=[
                {"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)
            ],
        ) from exc
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, f"HTTP {response.status_code}")
    if not isinstance(body, dict):
        return ApiError(response.status_code, f"HTTP {response.status_code}")
    detail = str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
    errors = body.get("errors")
    if isinstance(errors, list):
        lines = [
            f"{format_loc(e.get('loc') or [])}: {e.get('msg')}"
            for e in errors
            if isinstance(e, dict)
        ]
        # Servers name the first bad path in the detail already; do not repeat it.
        extra = [line for line in lines if line not in detail]
        if extra:
            detail += "; " + "; ".join(extra)
    slug = str(body.get("type") or "").rsplit("/", 1)[-1]
    return ApiError(
        response.status_code,
        f"{detail} (HTTP {response.status_code})",
        errors if isinstance(errors, list) else None,
        slug=slug,
    )
