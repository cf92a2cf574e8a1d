"""Request bodies are bounded before they are read, not after."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipboard.core.errors import PayloadTooLarge
from shipboard.core.problems import problem_response


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")


class BodySizeLimitMiddleware:
    """A hard cap on every request body: refused on Content-Length, or cut off while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _reject(scope, receive, send, self.max_bytes)
            return
        seen = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise too_large(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                # FastAPI turns any error while it parses a body into 400 "There was an error
                # parsing the body"; a body cut off at the limit is answered 413 below instead.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await _reject(scope, receive, send, self.max_bytes)


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


async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = too_large(limit)
    response = problem_response(
        error.status_code, error.detail, title=error.title, slug=error.type_slug
    )
    await response(scope, receive, send)
