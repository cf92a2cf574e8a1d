"""Domain errors. Each subclass has a fixed HTTP status; one handler renders them all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


def format_loc(loc: Sequence[str | int]) -> str:
    """``["body", "config", "freeze_windows", 0, "cron"]`` → ``config.freeze_windows[0].cron``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


class ShipboardError(Exception):
    status_code: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    type_slug: ClassVar[str] = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidInput(ShipboardError):
    status_code = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class NotFound(ShipboardError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(ShipboardError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class Unauthorized(ShipboardError):
    status_code = 401
    title = "Unauthorized"
    type_slug = "unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ShipboardError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class GateBlocked(ShipboardError):
    status_code = 422
    title = "Deployment blocked by a gate"
    type_slug = "gate-blocked"


class RateLimited(ShipboardError):
    status_code = 429
    title = "Too many requests"
    type_slug = "rate-limited"


class PayloadTooLarge(ShipboardError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class ServiceUnavailable(ShipboardError):
    status_code = 503
    title = "Service unavailable"
    type_slug = "service-unavailable"


class MetricsStoreUnavailable(ServiceUnavailable):
    """The user's Prometheus-compatible store (SHIPBOARD_PROMETHEUS_URL) could not answer."""

    title = "Metrics store unavailable"
    type_slug = "metrics-store-unavailable"
