"""A hostile metrics store: a loopback HTTP server that answers every request (the Prometheus
query API's GETs, remote write's POSTs) with what the test says — any status and body, its
headers or body one byte at a time, the request's own headers (``Authorization`` too) echoed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

ECHO = "{headers}"  # in a body: replaced by the request's headers, as a proxy might echo them


class HostileStore:
    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b""
        self.drip_s: float | None = None  # seconds between two bytes of the body
        self.drip_headers_s: float | None = None  # seconds between two header lines
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer._answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, document: Any, status: int = 200) -> None:
        """Answer ``document`` (JSON unless bytes) with ``status``."""
        self.status = status
        self.body = document if isinstance(document, bytes) else orjson.dumps(document)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.seen.append(handler.path)
        echoed = "; ".join(f"{name}: {value}" for name, value in handler.headers.items())
        body = self.body.replace(ECHO.encode(), echoed.encode())
        try:
            if self.drip_headers_s is not None:
                _slowly(
                    handler, b"HTTP/1.1 200 OK\r\n", [b"X-Pad: 1\r\n"] * 1000, self.drip_headers_s
                )
                return
            handler.send_response(self.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if self.drip_s is None:
                handler.wfile.write(body)
                return
            handler.wfile.flush()
            _slowly(handler, b"", [body[i : i + 1] for i in range(len(body))], self.drip_s)
        except OSError:
            pass  # the client gave up: what a hostile store wants to find out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _slowly(
    handler: BaseHTTPRequestHandler, first: bytes, parts: list[bytes], every_s: float
) -> None:
    write: Callable[[bytes], Any] = handler.wfile.write
    write(first)
    for part in parts:
        handler.wfile.flush()
        time.sleep(every_s)
        write(part)
