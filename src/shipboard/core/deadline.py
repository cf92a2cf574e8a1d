"""An httpx client whose every request ends within a total time, however the other side sends.

httpx's ``timeout`` bounds each operation, not the request: the read timeout restarts with every
byte received. A server that sends one byte every nine seconds (headers or body) never trips a
10-second timeout and holds the caller — an API worker thread, the watch loop, the forwarder's
lease — for as long as it likes. Here every connect, read and write of a request gets the time
left until the request's deadline at most, and none once it has passed: httpx then raises its
own ``ConnectTimeout``/``ReadTimeout``/``WriteTimeout``, which callers already handle.

The deadline is set when the transport is handed the request and holds until the response has
been read (a streamed body included), per thread: one request at a time uses a connection. A
caller with a deadline of its own (a round of queries that must end together) caps it with
:func:`capped`.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_local = threading.local()


def client(
    *,
    timeout_s: float,
    total_s: float,
    verify: ssl.SSLContext | str | bool = True,
    **kwargs: Any,
) -> httpx.Client:
    """An ``httpx.Client`` (``kwargs`` as httpx takes them) whose requests each take at most
    ``total_s`` from start to the last byte of the response, and each operation ``timeout_s``."""
    return httpx.Client(
        transport=DeadlineTransport(total_s=total_s, verify=verify),
        timeout=timeout_s,
        **kwargs,
    )


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, its network backend wrapped so that no I/O outlives the deadline."""

    def __init__(self, *, total_s: float, verify: ssl.SSLContext | str | bool = True) -> None:
        super().__init__(verify=verify)
        self.total_s = total_s
        pool = self._pool
        pool._network_backend = backend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        begin(self.total_s)
        return super().handle_request(request)


def backend(inner: httpcore.NetworkBackend) -> httpcore.NetworkBackend:
    """``inner`` whose connections keep to the deadline :func:`begin` set in this thread."""
    return _DeadlineBackend(inner)


def begin(total_s: float) -> None:
    """Start a request's deadline, in this thread: its I/O ends within ``total_s``, and by the
    cap of an enclosing :func:`capped` if that comes first."""
    end = time.monotonic() + total_s
    cap: float | None = getattr(_local, "cap", None)
    _local.deadline = end if cap is None else min(end, cap)


@contextmanager
def capped(at: float | None) -> Iterator[None]:
    """Requests this thread starts inside the block end by ``at`` (``time.monotonic()``) at
    the latest; None changes nothing."""
    previous: float | None = getattr(_local, "cap", None)
    if at is not None:
        _local.cap = at if previous is None else min(previous, at)
    try:
        yield
    finally:
        _local.cap = previous


def cap_passed() -> bool:
    """Whether this thread is inside a :func:`capped` block whose time has passed."""
    cap: float | None = getattr(_local, "cap", None)
    return cap is not None and time.monotonic() >= cap


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request took longer than its total deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self.inner.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(
            host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_unix_socket(
            path, _left(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
