"""A small HTTP client for the Shipboard API, used by the CLI and by CI pipelines."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from shipboard import __version__
from shipboard.config import Settings, get_settings
from shipboard.core.errors import ShipboardError


class ApiError(ShipboardError):
    """A problem response from the server, carried to the caller with its status."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail, errors=errors)
        self.status = status


class ShipboardClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        if not token:
            raise ShipboardError(
                "no API token: set SHIPBOARD_TOKEN (make one with `shipboard tokens create USER`)"
            )
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"shipboard-cli/{__version__}",
            },
            timeout=timeout,
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ShipboardClient:
        settings = settings or get_settings()
        return cls(settings.url, settings.token)

    def __enter__(self) -> ShipboardClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ShipboardError(
                f"cannot reach Shipboard at {self._http.base_url} ({type(exc).__name__}); "
                "check SHIPBOARD_URL"
            ) from exc
        if response.status_code >= 400:
            raise _problem(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def text(self, path: str, **kwargs: Any) -> str:
        """A GET whose answer is not JSON (CSV, HTML), with the same errors as ``request``."""
        try:
            response = self._http.get(path, **kwargs)
        except httpx.TransportError as exc:
            raise ShipboardError(
                f"cannot reach Shipboard at {self._http.base_url} ({type(exc).__name__}); "
                "check SHIPBOARD_URL"
            ) from exc
        if response.status_code >= 400:
            raise _problem(response)
        return response.text

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, f"HTTP {response.status_code}")
    detail = body.get("detail") or body.get("title") or f"HTTP {response.status_code}"
    errors = body.get("errors")
    if errors:
        detail += "; " + "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in errors
        )
    return ApiError(response.status_code, f"{detail} (HTTP {response.status_code})", errors)
