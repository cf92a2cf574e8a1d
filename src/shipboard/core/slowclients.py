"""Connections that send their request too slowly are closed (slowloris).

uvicorn bounds the wait between requests on a kept-alive connection (``timeout_keep_alive``)
but nothing else: a client that connects and sends nothing, sends its headers a byte at a time,
or stops halfway through a body held its connection (and a file descriptor, and the request's
task) for as long as it liked, so a few hundred of them took the server off the air. This
protocol, uvicorn's httptools one plus two timers, is what ``shipboard serve`` runs:

- **headers:** from the moment a connection opens, or a kept-alive one starts its next request,
  the request line and headers must be complete within ``header_timeout_s``. The deadline is
  absolute: a byte now and then does not extend it. Past it: ``408 Request Timeout`` and close.
- **header size:** the request line and headers may take ``MAX_HEADER_BYTES`` (64 KiB) at most;
  llhttp sets no bound of its own, so one request could make the server hold as many megabytes
  of "headers" as it could send before the deadline. Past it: ``431`` and close.
- **body:** once the headers are in, the body may pause for at most ``body_idle_timeout_s``
  between two pieces; a slow but steady upload is fine. Past it the connection is closed and the
  route, if it was reading, sees the client go away. Time the server itself is not reading (a
  route that has not asked for the body yet, so uvicorn paused the socket) does not count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024


def _plain(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(text), text)
    )


_REQUEST_TIMEOUT = _plain(b"408 Request Timeout", b"request headers took too long")
_HEADERS_TOO_LARGE = _plain(
    b"431 Request Header Fields Too Large", b"request line and headers exceed 64 KiB"
)


class SlowClientGuard(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_idle: asyncio.TimerHandle | None = None

    @classmethod
    def configured(cls, *, header_timeout_s: float, body_idle_timeout_s: float) -> type[Any]:
        """This protocol with the given timeouts, for ``uvicorn.Config(http=…)``."""
        return type(
            cls.__name__,
            (cls,),
            {"header_timeout_s": header_timeout_s, "body_idle_timeout_s": body_idle_timeout_s},
        )

    # --- uvicorn's protocol callbacks, each extended by a timer ------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._body_idle is not None:
            self._arm_body_idle()
        if self._header_deadline is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still reading headers after this piece (the counter may include a body that came
        # with the end of the headers, but then they are complete and the deadline is gone).
        if self._header_deadline is not None and self._header_bytes > MAX_HEADER_BYTES:
            self._cancel_header_deadline()
            if not self.transport.is_closing():
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()
        self._arm_body_idle()

    def on_message_complete(self) -> None:
        self._cancel_body_idle()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        self._cancel_body_idle()
        super().connection_lost(exc)

    # --- timers -------------------------------------------------------------------------------

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_bytes = 0
            self._header_deadline = self.loop.call_later(
                self.header_timeout_s, self._headers_too_slow
            )

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _arm_body_idle(self) -> None:
        self._cancel_body_idle()
        self._body_idle = self.loop.call_later(self.body_idle_timeout_s, self._body_went_idle)

    def _cancel_body_idle(self) -> None:
        if self._body_idle is not None:
            self._body_idle.cancel()
            self._body_idle = None

    def _body_went_idle(self) -> None:
        self._body_idle = None
        if self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:
            self._arm_body_idle()  # we are the ones not reading: the client is not idle
            return
        self.transport.close()
