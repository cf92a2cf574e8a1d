"""Checking a PromQL query on write (core/promql.py), directly: what may be named, and every
parser failure — a Rust panic included — as the same ValueError (a 422 where it is written);
and a deadline that ends an answer a store trickles out, which no read timeout would."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shipboard.core.promql import PromStore, StoreSettings, ask, check_query


def test_a_query_the_parser_panics_on_is_refused_like_any_parse_error() -> None:
    # promql-parser converts the offset to a Rust Duration and panics on an infinite one; the
    # panic reaches Python as pyo3's PanicException, a BaseException.
    for query in ("up offset Inf", "up offset NaN", "rate(up[5m]) offset 1e309"):
        with pytest.raises(ValueError, match="not a PromQL query"):
            check_query(query)


def test_a_query_may_name_only_the_variables_where_it_runs() -> None:
    check_query('up{environment="$environment", version="${version}"}')
    check_query('up{environment="$environment"}', variables=("environment",))
    with pytest.raises(ValueError, match=r"unknown variable \$version"):
        check_query('up{version="$version"}', variables=("environment",))


class _Trickle(BaseHTTPRequestHandler):
    """Answers 200, then one byte of JSON every 0.1 s, never ending."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            return  # the client gave up

    def log_message(self, *args: Any) -> None:
        pass


def test_a_deadline_ends_an_answer_the_store_trickles_out() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Each byte comes well within the read timeout, so only the deadline can end the answer.
    store = PromStore(StoreSettings(url=f"http://127.0.0.1:{server.server_address[1]}"))
    try:
        started = time.monotonic()
        answer = ask(store, "up", at=datetime.now(UTC), deadline=started + 0.5)
        took = time.monotonic() - started
    finally:
        store.close()
        server.shutdown()
        server.server_close()
    assert answer == "the metrics store's answer did not end in time"
    assert 0.5 <= took < 1.5, took
