"""Request bodies are bounded before they are read, not after."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipboard.core import jsonshape
from shipboard.core.errors import PayloadTooLarge, ShipboardError
from shipboard.core.problems import problem_response


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")


# What a request may send before it is authenticated: a login form or a 401's worth of JSON.
ANONYMOUS_MAX_BYTES = 64 * 1024

Authenticate = Callable[[Scope], Awaitable[bool]]


class BodySizeLimitMiddleware:
    """Every request body is bounded before it is read, and JSON bodies are shape-checked
    before they are parsed.

    A request that carries a body is authenticated first, before one byte of it is read
    (``authenticate``: True for valid credentials, False for none; it raises the 401/429 for
    wrong ones). Without credentials the body may be ``anonymous_max_bytes`` at most (a login
    form, or what a route needs to answer 401); with them, ``max_bytes``. Routes whose body is
    their authentication (webhooks, signed over the raw bytes) skip this and bound their body
    themselves under ``max_bytes``. The cap is refused on Content-Length, or cut off while the
    body streams. A JSON body (or one without a content type, which FastAPI parses as JSON)
    is checked by :func:`shipboard.core.jsonshape.check` once it has arrived, before the
    route's parser sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        authenticate: Authenticate | None = None,
        anonymous_max_bytes: int = ANONYMOUS_MAX_BYTES,
        signed_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.authenticate = authenticate
        self.anonymous_max_bytes = min(anonymous_max_bytes, max_bytes)
        self.signed_paths = signed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        has_body = declared != 0 and (declared is not None or _header(scope, b"transfer-encoding"))
        limit = self.max_bytes
        signed = scope["path"] in self.signed_paths
        if has_body and not signed and self.authenticate is not None:
            try:
                authenticated = await self.authenticate(scope)
            except Exception as exc:  # answered as the route would have answered it
                response = await _handled(scope, exc)
                if response is None:
                    raise
                await response(scope, receive, send)
                return
            if not authenticated:
                limit = self.anonymous_max_bytes
        if declared is not None and declared > limit:
            await _error_response(too_large(limit))(scope, receive, send)
            return
        check_json = has_body and not signed and _is_json(scope)
        seen = 0
        chunks: list[bytes] = []
        refused: ShipboardError | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                seen += len(body)
                if seen > limit:
                    refused = too_large(limit)
                    raise refused
                if check_json:
                    chunks.append(body)
                    if not message.get("more_body", False):
                        raw = b"".join(chunks)
                        chunks.clear()
                        try:
                            jsonshape.check(raw)
                        except ShipboardError as exc:
                            refused = exc
                            raise
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                # FastAPI turns any error while it reads a body into 400 "There was an error
                # parsing the body"; the refusal is answered below instead.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)
        if refused is not None and not started:
            await _error_response(refused)(scope, receive, send)


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    """Read a body only up to ``max_bytes``; stop and raise PayloadTooLarge past it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return True
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


async def _handled(scope: Scope, exc: Exception) -> Response | None:
    """The app's own answer to an error raised out here, before the routes' exception layer:
    a wrong token is the same 401, a database that is away the same 503 with Retry-After."""
    handlers = getattr(scope.get("app"), "exception_handlers", {})
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            answer = handler(Request(scope), exc)
            response: Response = await answer if inspect.isawaitable(answer) else answer
            return response
    if isinstance(exc, ShipboardError):
        return _error_response(exc)
    return None


def _error_response(error: ShipboardError) -> JSONResponse:
    return problem_response(
        error.status_code,
        error.detail,
        title=error.title,
        slug=error.type_slug,
        errors=error.errors,
        headers=error.headers,
    )
