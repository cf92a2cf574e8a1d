"""OTLP/HTTP error bodies: a ``google.rpc.Status`` in the request's encoding.

The OTLP/HTTP spec asks every 4xx/5xx answer of an export to carry a Status, protobuf-encoded for
a protobuf request and JSON-encoded for a JSON one. Errors reach ``/v1/metrics`` from many layers
(the bearer check, the body-size cap, the route, the rate limiter), and each of them renders
problem+json; this middleware re-encodes whichever one answered, keeping its status and headers
(``Retry-After``, ``WWW-Authenticate``), so no layer has to know about OTLP.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from google.protobuf import json_format
from google.rpc.code_pb2 import Code
from google.rpc.status_pb2 import Status
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROTOBUF = "application/x-protobuf"
OTLP_PATHS = frozenset({"/v1/metrics"})
MAX_ERROR_BODY = 64 * 1024

# The gRPC code closest to each HTTP status (google.rpc.Code's own HTTP mapping).
GRPC_CODES = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ABORTED,
    413: Code.RESOURCE_EXHAUSTED,
    415: Code.INVALID_ARGUMENT,
    422: Code.INVALID_ARGUMENT,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}


def status_body(status: int, problem: bytes, *, binary: bool) -> bytes:
    """The Status for an HTTP error whose problem+json body is ``problem``."""
    try:
        document: Any = json.loads(problem)
    except ValueError:
        document = None
    message = ""
    if isinstance(document, dict):
        message = str(document.get("detail") or document.get("title") or "")
    if not message:
        message = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    default = Code.INTERNAL if status >= 500 else Code.INVALID_ARGUMENT
    answer = Status(code=GRPC_CODES.get(status, default), message=message)
    if binary:
        encoded: bytes = answer.SerializeToString()
        return encoded
    # Every field, details included: the spec's JSON example shows {code, message, details}.
    return json.dumps(
        json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)
    ).encode()


class OtlpStatusMiddleware:
    """Re-encode the error answers of OTLP routes as ``google.rpc.Status``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in OTLP_PATHS:
            await self.app(scope, receive, send)
            return
        request_type = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
        binary = request_type == PROTOBUF
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0

        async def wrapped_send(message: Message) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            # An error body is small (a problem document); beyond the bound it is cut, not kept.
            body = message.get("body", b"")
            if size < MAX_ERROR_BODY:
                chunks.append(body[: MAX_ERROR_BODY - size])
            size += len(body)
            if message.get("more_body", False):
                return
            encoded = status_body(start["status"], b"".join(chunks), binary=binary)
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["content-type"] = PROTOBUF if binary else "application/json"
            headers["content-length"] = str(len(encoded))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": encoded, "more_body": False})

        await self.app(scope, receive, wrapped_send)
