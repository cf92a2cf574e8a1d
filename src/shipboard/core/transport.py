"""HTTPS-only behaviour: Strict-Transport-Security on responses served over TLS."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One year, the value browsers' preload lists ask for. No includeSubDomains: other hosts under
# the same domain are not ours to pin to HTTPS.
HSTS = b"max-age=31536000"


class StrictTransportSecurityMiddleware:
    """Tells browsers to use HTTPS only, on responses that came over HTTPS.

    The scheme is https when uvicorn terminates TLS (``--ssl-certfile``) or when a trusted proxy
    says so in ``X-Forwarded-Proto`` (``SHIPBOARD_FORWARDED_ALLOW_IPS``). Over plain HTTP the
    header would be ignored by browsers anyway, and sending it there would claim what is not true.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"strict-transport-security", HSTS),
                ]
            await send(message)

        await self.app(scope, receive, send_with_hsts)
