"""The HTTP layer of the client: authentication, retries with backoff, problem responses,
upload progress, Server-Sent Events. ``Client`` adds the typed methods on top."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from shipboard import __version__
from shipboard.client.errors import NoToken, ServerUnreachable, problem
from shipboard.client.progress import PROGRESS_MIN_BYTES, ProgressReader, file_size, progress_bar
from shipboard.config import Settings, get_settings
from shipboard.core.errors import InvalidInput

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_CAP_S = 8.0


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


class Transport:
    """Requests to one Shipboard server with one token; a context manager that closes its
    connections. ``Client`` (``api.py``) is the class to use."""

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
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """A client for SHIPBOARD_URL / SHIPBOARD_TOKEN (or the CLI's --url / --token)."""
        settings = settings or get_settings()
        return cls(
            _defaults.url or settings.url,
            _defaults.token or settings.token,
            retries=settings.retries,
            progress=_defaults.progress,
        )

    def __enter__(self) -> Self:
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
            raise problem(response)
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
        sizes = {name: file_size(value) for name, value in files.items()}
        total = sum(s for s in sizes.values() if s is not None)
        if total < PROGRESS_MIN_BYTES:
            yield None
            return
        with progress_bar(total, "uploading", enabled=True) as advance:
            wrapped = {}
            for name, value in files.items():
                if isinstance(value, tuple) and hasattr(value[1], "read"):
                    wrapped[name] = (value[0], ProgressReader(value[1], advance), *value[2:])
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
                    raise problem(stream)
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

    def _upload(self, url: str, path: str | Path, form: dict[str, str]) -> Any:
        file = Path(path)
        if not file.is_file():
            raise InvalidInput(f"{file} is not a file")
        with file.open("rb") as handle:
            return self.request("POST", url, files={"file": (file.name, handle)}, data=form)
