"""RFC 9457 problem responses for every error the API can produce."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipboard.core.errors import ShipboardError, format_loc

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://shipboard.dev/problems/"

log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid"))})
    return out


API_PREFIXES = (
    "/api/",
    "/v1/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
)


def is_page(request: Request) -> bool:
    """A browser page (HTML errors), as opposed to the API (problem+json)."""
    return not request.url.path.startswith(API_PREFIXES)


def _is_nul_text(exc: DataError) -> bool:
    """psycopg refuses NUL in text parameters; PostgreSQL refuses ``\\u0000`` in jsonb (22P05)."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "22P05" or "NUL (0x00)" in str(orig)


def install(app: FastAPI) -> None:
    @app.exception_handler(ShipboardError)
    async def _domain(request: Request, exc: ShipboardError) -> Response:
        html_error = getattr(request.app.state, "html_error", None)
        if html_error is not None and is_page(request):
            response: Response = html_error(request, exc, exc.status_code, exc.title, exc.detail)
            if response.status_code == exc.status_code:
                response.headers.update(exc.headers)  # Retry-After on a page's 429 too
            return response
        return problem_response(
            exc.status_code,
            exc.detail,
            title=exc.title,
            slug=exc.type_slug,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        html_error = getattr(request.app.state, "html_error", None)
        if html_error is not None and is_page(request):
            detail = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in errors)
            page: Response = html_error(request, exc, 422, "Invalid input", detail)
            return page
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem_response(
                400, "request body is not valid JSON", errors=errors, slug="malformed-json"
            )
        first = errors[0] if errors else None
        return problem_response(
            422,
            # The first bad path in the detail, so a client that shows only the detail says where.
            f"request did not validate: {format_loc(first['loc'])}: {first['msg']}"
            if first
            else "request did not validate",
            title="Invalid input",
            slug="invalid-input",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        html_error = getattr(request.app.state, "html_error", None)
        if html_error is not None and is_page(request):
            title = HTTPStatus(exc.status_code).phrase
            page: Response = html_error(request, exc, exc.status_code, title, detail)
            return page
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # Date arithmetic at the edges of the calendar (until=0001-01-01 minus a period) or a
        # number past 64 bits: the input is out of range, not the server broken.
        html_error = getattr(request.app.state, "html_error", None)
        detail = "a date or number in the request is out of the supported range"
        if html_error is not None and is_page(request):
            page: Response = html_error(request, exc, 422, "Invalid input", detail)
            return page
        return problem_response(422, detail, title="Invalid input", slug="invalid-input")

    @app.exception_handler(StatementError)
    async def _bind_error(request: Request, exc: StatementError) -> Response:
        # SQLAlchemy wraps what a column type raises while binding a parameter: a date whose
        # conversion to UTC leaves the calendar (0001-01-01T00:00:00+14:00) is the caller's.
        if isinstance(exc.orig, OverflowError):
            return await _overflow(request, exc.orig)
        return await _unexpected(request, exc)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database_unavailable", error=type(exc.orig).__name__)
        return problem_response(
            503, "the database is unavailable; try again shortly", headers={"Retry-After": "5"}
        )

    @app.exception_handler(PoolTimeoutError)
    async def _pool_exhausted(_: Request, exc: PoolTimeoutError) -> JSONResponse:
        # Every connection of the pool stayed busy for pool_timeout: overloaded, not broken.
        log.warning("database_pool_exhausted")
        return problem_response(
            503, "the database is busy; try again shortly", headers={"Retry-After": "1"}
        )

    @app.exception_handler(DataError)
    async def _db_data_error(_: Request, exc: DataError) -> JSONResponse:
        if _is_nul_text(exc):
            # PostgreSQL's text and jsonb cannot hold U+0000; JSON can. The caller's input.
            return problem_response(
                422,
                "text cannot contain NUL (U+0000) characters",
                title="Invalid input",
                slug="invalid-input",
            )
        log.error("database_error", error=type(exc.orig).__name__)
        return problem_response(500, "internal error")

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database_error", error=type(exc.orig).__name__)
        return problem_response(500, "internal error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        # This answer is sent from outside the middlewares, which add the id to all others.
        request_id = getattr(request.state, "request_id", None)
        headers = {"X-Request-ID": request_id} if request_id else None
        return problem_response(500, "internal error", headers=headers)
