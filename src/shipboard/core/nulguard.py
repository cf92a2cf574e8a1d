"""No request carries U+0000 into Shipboard: refused (422) before any route reads it.

PostgreSQL stores no NUL in ``text`` or ``jsonb``: a log message, an error message or a config
value with one was a 500 there, and a secret holding one was accepted and then failed every
deployment (an environment variable cannot contain NUL). SQLite would keep it, and the two
backends must answer alike. So one check at the edge covers every text input, whatever the
route and however deeply the string is nested:

- the path and the query string: a literal NUL or its percent-encoding ``%00``;
- JSON, form-encoded and plain-text bodies, scanned as they stream in (no second copy): a raw
  NUL byte (never valid JSON text, and what UTF-16/32 bodies are full of — JSON between systems
  is UTF-8, RFC 8259 §8.1), the JSON escape ``\\u0000`` unless its backslash is itself escaped,
  and ``%00`` in form bodies.

Multipart uploads and compressed or binary bodies (protobuf) are not text on the wire; what is
read out of them is cleaned by their parsers.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipboard.core.errors import InvalidInput
from shipboard.core.problems import problem_response

_JSON_ESCAPE = re.compile(rb"\\u0000")
_PERCENT = re.compile(rb"%00")
# A NUL escape spans 6 bytes; a match split between two chunks has at most 5 in the first.
_CARRY = 5


def scrub(text: str) -> str:
    """Text read out of a file or a process (not typed by a client), storable on PostgreSQL:
    each NUL becomes U+FFFD, the replacement character."""
    return text.replace("\x00", "\ufffd")


def refused(where: str) -> InvalidInput:
    return InvalidInput(
        f"the {where} contains a NUL character (U+0000), which Shipboard does not store",
        errors=[{"loc": [where], "msg": "NUL (U+0000) is not allowed in text"}],
    )


def _body_kind(scope: Scope) -> str | None:
    """ "json", "form" or None (not scanned) from the request's content headers."""
    content_type = encoding = ""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name == b"content-encoding":
            encoding = value.decode("latin-1").strip().lower()
    if encoding not in ("", "identity"):
        return None
    if content_type == "application/x-www-form-urlencoded":
        return "form"
    if (
        content_type in ("", "application/json", "text/plain")
        or content_type.endswith("+json")
        or content_type.startswith("text/")
    ):
        return "json"
    return None


class _BodyScanner:
    """Finds a NUL in a body that arrives in chunks, without holding more than a few bytes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.carry = b""
        # Whether the backslashes just before ``carry`` (not in it) are odd in number.
        self.odd_before = False

    def feed(self, chunk: bytes) -> bool:
        """True when the body seen so far holds a NUL."""
        if b"\x00" in chunk:
            return True
        data = self.carry + chunk
        if self.kind == "form":
            found = _PERCENT.search(data) is not None
        else:
            found = any(self._escaped(data, m.start()) for m in _JSON_ESCAPE.finditer(data))
        cut = max(0, len(data) - _CARRY)
        head = data[:cut]
        run = len(head) - len(head.rstrip(b"\\"))
        odd = run % 2 == 1
        self.odd_before = (odd != self.odd_before) if run == len(head) else odd
        self.carry = data[cut:]
        return found

    def _escaped(self, data: bytes, at: int) -> bool:
        """Whether the backslash at ``at`` starts an escape (an even run of them precedes it)."""
        head = data[:at]
        run = len(head) - len(head.rstrip(b"\\"))
        odd = run % 2 == 1
        if run == len(head):
            odd = odd != self.odd_before
        return not odd


class NulGuardMiddleware:
    """Refuses NUL in the path, the query and text bodies (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        for where, raw in (("path", raw_path), ("query", scope.get("query_string", b""))):
            if b"\x00" in raw or _PERCENT.search(raw.lower()):
                await _reject(scope, receive, send, where)
                return
        kind = _body_kind(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        scanner = _BodyScanner(kind)
        found = started = False

        async def scanning_receive() -> Message:
            nonlocal found
            message = await receive()
            if message["type"] == "http.request" and scanner.feed(message.get("body", b"")):
                found = True
                raise refused("body")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if found and not started:
                # Whatever the route made of the failed read (FastAPI answers 400 "error
                # parsing the body"), the answer is the 422 below.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, scanning_receive, guarded_send)
        if found and not started:
            await _reject(scope, receive, send, "body")


async def _reject(scope: Scope, receive: Receive, send: Send, where: str) -> None:
    error = refused(where)
    response = problem_response(
        error.status_code,
        error.detail,
        title=error.title,
        slug=error.type_slug,
        errors=error.errors,
    )
    await response(scope, receive, send)
