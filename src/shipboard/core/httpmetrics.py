"""Request counts and latencies by route template, for ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
Observe = Callable[[str, str, int, float, MutableMapping[str, Any]], None]


class RequestMetricsMiddleware:
    """Reports each request's method, route template, status and time to its first byte.

    The route template (``/api/v1/deployments/{deployment_id}``), never the raw path: one series
    per deployment id would grow without bound. Requests no route matched share one label.
    Time to the response's start, not its end, so a live log stream does not read as a slow one.
    """

    def __init__(self, app: ASGIApp, *, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # The router writes the matched route into the scope it was given (this one).
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.observe(
                scope["method"],
                route,
                status,
                elapsed if elapsed is not None else time.perf_counter() - started,
                scope.setdefault("state", {}),
            )
