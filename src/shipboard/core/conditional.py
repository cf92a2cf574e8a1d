"""Conditional GET for the JSON API: an ``ETag`` on every successful read, 304 when it matches.

A dashboard polling ``/api/v1/deployments`` or a report every few seconds mostly receives what
it already has; with ``If-None-Match`` it gets an empty 304 instead of the same page again.
The tag is a hash of the body the route produced, so it is exact — it changes whenever the
answer does, whatever changed it — and needs no invalidation. The route still runs (the answer
must be computed to be compared); what is saved is the transfer and the client's work.

Responses are marked ``Cache-Control: private, no-cache``: a browser or proxy may keep them
but must ask again before each use, because the data behind them changes at any time and the
answer depends on who asks (roles see different fields).
"""

from __future__ import annotations

import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bodies larger than this stream through untouched: buffering a big export to hash it would
# hold it all in memory, and such downloads are not what clients poll.
MAX_BUFFERED = 4 * 1024 * 1024


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): W/"x" and "x" name the same representation.
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates


class ConditionalGetMiddleware:
    def __init__(self, app: ASGIApp, *, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), ""
        )
        await self.app(scope, receive, _Tagger(send, if_none_match))


class _Tagger:
    """The ``send`` of one request: holds a 200 JSON response back until it is whole, then
    sends it with its ``ETag`` — or a 304 if the client already has it."""

    def __init__(self, send: Send, if_none_match: str) -> None:
        self.send = send
        self.if_none_match = if_none_match
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.passing_through = False

    async def __call__(self, message: Message) -> None:
        if self.passing_through or message["type"] not in (
            "http.response.start",
            "http.response.body",
        ):
            await self.send(message)
        elif message["type"] == "http.response.start":
            await self._start(message)
        else:
            await self._body(message)

    async def _start(self, message: Message) -> None:
        content_type = dict(message.get("headers", [])).get(b"content-type", b"")
        if message["status"] == 200 and content_type.startswith(b"application/json"):
            self.start = message
        else:
            self.passing_through = True
            await self.send(message)

    async def _body(self, message: Message) -> None:
        assert self.start is not None
        self.chunks.append(message.get("body", b""))
        self.size += len(self.chunks[-1])
        more = message.get("more_body", False)
        if self.size > MAX_BUFFERED:
            self.passing_through = True
            await self.send(self.start)
            await self.send(
                {"type": "http.response.body", "body": b"".join(self.chunks), "more_body": more}
            )
        elif not more:
            await self._finish(b"".join(self.chunks))

    async def _finish(self, body: bytes) -> None:
        assert self.start is not None
        etag = etag_of(body)
        headers = [
            (k, v) for k, v in self.start.get("headers", []) if k not in (b"etag", b"cache-control")
        ]
        headers += [(b"etag", etag.encode()), (b"cache-control", b"private, no-cache")]
        if self.if_none_match and _matches(self.if_none_match, etag):
            # 304: the validators and caching headers, no body, no Content-Length.
            kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
            await self.send({"type": "http.response.start", "status": 304, "headers": kept})
            await self.send({"type": "http.response.body", "body": b""})
            return
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
