"""Browser-facing headers on every HTML response, whichever code produced it.

The pages set these themselves (web/render.py), but HTML also leaves through other doors: the
reports' printable ``?format=html`` on the API, error pages, the API docs. Each is served on
the session cookie's origin, so each gets the same Content-Security-Policy (no script but our
own, no framing) and ``nosniff``. And none may be kept by a browser or proxy: pages show what
only their viewer may read (a TOTP secret while enrolling, findings, configuration), and after
sign-out the back button or a shared machine's cache must not show them again — hence
``Cache-Control: no-store`` on HTML. Static assets (versioned, public) keep their own caching.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # Our own script and styles only; no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HTML_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
_HTML_HEADERS = [(k.lower().encode(), v.encode()) for k, v in HTML_HEADERS.items()]
_HTML_TYPES = (b"text/html", b"image/svg+xml")


class PageHeadersMiddleware:
    """Adds the headers above to every HTML (and SVG) response that does not set them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.lower().startswith(_HTML_TYPES):
                    headers += [(k, v) for k, v in _HTML_HEADERS if k not in names]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
