"""Structured logs: one JSON event per line in production, readable lines in development."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Protocol

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipboard.core.redaction import redact_event


class LoggingSettings(Protocol):
    """What logging reads of the settings: core sits below `shipboard.config`."""

    @property
    def log_json(self) -> bool | None: ...
    @property
    def log_level(self) -> str: ...
    @property
    def env(self) -> str: ...


def configure_logging(settings: LoggingSettings) -> None:
    json_logs = settings.log_json if settings.log_json is not None else settings.env == "production"
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        # Plain tracebacks: structlog's default for the console is rich's, which prints every
        # frame's local variables (tokens, secret values, request bodies) into the log.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    _route_stdlib_logging(renderer, level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # Last before rendering: no field of any line carries a credential.
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a
    stream swapped and closed since (a test's capture, a daemon's redirect) must not make the
    next log line raise, least of all inside a worker thread's error handling."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()
_STDLIB_HANDLER = "shipboard"
# A proxy's id (nginx's $request_id, a load balancer's trace id) is kept so lines can be joined
# across hops; anything else is replaced, so a header cannot inject text into the logs.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _route_stdlib_logging(renderer: structlog.typing.Processor, level: int) -> None:
    """Lines of libraries that log through ``logging`` (uvicorn, alembic, SQLAlchemy) get the same
    format and the same bound fields (the request id) as our own."""
    handler = logging.StreamHandler(_STDERR)
    handler.set_name(_STDLIB_HANDLER)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _STDLIB_HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Their INFO lines name every URL they call, and webhook URLs carry credentials.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class RequestLogMiddleware:
    """Binds a request id to every log line of a request, returns it in ``X-Request-ID`` and
    logs one event when the request ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("shipboard.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _INCOMING_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Only the path: query strings can carry tokens or other things not meant for logs.
            self.log.info(
                "request_finished",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            # The id stays bound: the request's task ends with it (the server runs each request
            # in a task of its own), and the error handler and the server log an unhandled
            # exception after this point, which should carry the id too.


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
