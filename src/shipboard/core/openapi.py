"""The OpenAPI document says what the error handlers really send.

Routes declare their error statuses with ``responses={status: {"model": Problem}}``; FastAPI
documents those (and its own 422) as ``application/json``. Every error the API sends is rendered
by ``core.problems`` as ``application/problem+json`` with the ``Problem`` shape, so the document is
rewritten once, when it is built, to say exactly that. Two errors come from shared plumbing rather
than from any route, so they are added to every operation that takes a body: 400 (a body that
does not parse, ``core.problems``) and 413 (``core.bodylimit``); and one to every operation:
422 (a NUL in the path, the query or the body, ``core.nulguard``). An OTLP operation marks
itself (``RPC_STATUS_ERRORS``) and its errors are documented as ``google.rpc.Status`` instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shipboard.core.problems import PROBLEM_JSON, Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_REF_TEMPLATE = "#/components/schemas/{model}"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def problem_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Document every 4xx/5xx response as problem+json ``Problem`` (in place; returned)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=_REF_TEMPLATE)
    for name, schema in problem.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("Problem", problem)
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if not operation:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("422", {"description": "Invalid input (NUL in the request)"})
            if "requestBody" in operation:
                # Every body is parsed by the same handlers and bounded by the same middleware.
                responses.setdefault("400", {"description": "Malformed body"})
                responses.setdefault("413", {"description": "Body larger than the limit"})
            status_errors = operation.pop(RPC_STATUS_ERRORS, False)
            if status_errors:
                schemas.setdefault("Status", _STATUS_SCHEMA)
            for status, response in responses.items():
                if status[:1] in {"4", "5"}:
                    response["content"] = (
                        _status_content()
                        if status_errors
                        else {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}}
                    )
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(document, f"#/components/schemas/{unused}"):
            schemas.pop(unused, None)
    return document


# An operation whose openapi_extra sets this answers errors as google.rpc.Status in the request's
# encoding (OTLP/HTTP, monitoring/otlp_status.py) instead of problem+json.
RPC_STATUS_ERRORS = "x-shipboard-rpc-status-errors"
_STATUS_SCHEMA: dict[str, Any] = {
    "title": "Status",
    "description": "google.rpc.Status: a gRPC code, a message, and details (OTLP/HTTP errors)",
    "type": "object",
    "properties": {
        "code": {"type": "integer", "description": "google.rpc.Code"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["code", "message", "details"],
}


def _status_content() -> dict[str, Any]:
    return {
        "application/json": {"schema": {"$ref": "#/components/schemas/Status"}},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
    }


def _referenced(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_referenced(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_referenced(v, ref) for v in node)
    return False


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` by one that documents errors as problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = problem_errors(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
