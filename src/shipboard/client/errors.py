"""What the client raises: a problem response (``ApiError``), no answer (``ServerUnreachable``),
no token (``NoToken``); and the checks it makes before sending anything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from shipboard.core.errors import InvalidInput, ShipboardError, format_loc


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


def validated(schema: Any, body: dict[str, Any]) -> dict[str, Any]:
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


def problem(response: httpx.Response) -> ApiError:
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
