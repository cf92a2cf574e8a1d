"""Checking a PromQL query on write (core/promql.py), directly: what may be named, and every
parser failure — a Rust panic included — as the same ValueError (a 422 where it is written);
and a deadline that ends an answer a store trickles out, which no read timeout would. And the
store as the hostile side: answers it drips, times that are not finite, NUL, and its error text
echoing the credentials it was sent."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shipboard.core.promql import PromStore, StoreError, StoreSettings, ask, check_query
from tests.support.hostile import ECHO, HostileStore


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


# --- the store as the hostile side (tests/support/hostile.py) --------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _store(url: str, **settings: Any) -> PromStore:
    return PromStore(StoreSettings(url=url, **settings))


@pytest.mark.parametrize("stamp", ["+Inf", "-Inf", "NaN"])
def test_a_sample_time_that_is_not_finite_is_the_stores_error(
    hostile_store: HostileStore, stamp: str
) -> None:
    # series() turns each time into a bucket index with round(): inf raised OverflowError (500).
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[stamp, "1"]]}]}
    hostile_store.answer({"status": "success", "data": matrix})
    store = _store(hostile_store.url)
    try:
        with pytest.raises(StoreError, match="sample time that is not a finite number"):
            store.query_range("up", start=NOW - timedelta(hours=1), end=NOW, step_s=60)
    finally:
        store.close()


@pytest.mark.parametrize(
    "credentials",
    [
        {"bearer_token": "tok-3f9a1c77e2"},
        {"username": "reader", "password": "pw-8d2e41b0c5"},
        {"headers": (("X-Api-Key", "key-3f9a1c77e2"), ("X-Scope-OrgID", "1"))},
    ],
)
def test_the_stores_error_never_carries_the_credentials_it_was_sent(
    hostile_store: HostileStore, credentials: dict[str, Any]
) -> None:
    # A proxy in front of the store that echoes the request's headers back; a short header value
    # (a tenant "1") is no secret worth garbling the text for.
    hostile_store.answer(
        {"status": "error", "error": f"denied for {ECHO} at http://u:pw-8d2e41b0c5@x/"}, 422
    )
    store = _store(hostile_store.url, **credentials)
    try:
        with pytest.raises(StoreError) as raised:
            store.query("up", at=NOW)
    finally:
        store.close()
    message = str(raised.value)
    assert message.startswith("denied for ")
    assert "3f9a1c77e2" not in message
    assert "8d2e41b0c5" not in message
    assert base64.b64encode(b"reader:pw-8d2e41b0c5").decode() not in message
    assert ("X-Scope-OrgID: 1" in message) == ("headers" in credentials)


def test_nul_from_the_store_never_reaches_what_is_stored(hostile_store: HostileStore) -> None:
    # Labels become alert labels and verdicts; PostgreSQL keeps no NUL in text or jsonb.
    vector = {
        "resultType": "vector",
        "result": [{"metric": {"a\0": "b\0", "n": 5}, "value": [1, "2"]}],
    }
    hostile_store.answer({"status": "success", "data": vector})
    store = _store(hostile_store.url)
    try:
        (sample,) = store.query("up", at=NOW)
        hostile_store.answer({"status": "error", "error": "bad\0query"}, 400)
        with pytest.raises(StoreError) as raised:
            store.query("up", at=NOW)
    finally:
        store.close()
    assert sample.labels == {"a\ufffd": "b\ufffd", "n": "5"}
    assert "\0" not in str(raised.value)
    assert raised.value.bad_query


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_store_that_drips_its_answer_is_given_up_on_at_the_total_deadline(
    hostile_store: HostileStore, where: str
) -> None:
    # httpx's timeout restarts with every byte read: one byte every 0.2 s never trips a 1-second
    # timeout, so the 64-byte answer below would take 13 s (and a slower drip, forever).
    hostile_store.answer({"status": "success", "data": {"resultType": "vector", "result": []}})
    if where == "headers":
        hostile_store.drip_headers_s = 0.2
    else:
        hostile_store.drip_s = 0.2
    store = _store(hostile_store.url, timeout_s=1.0, total_s=2.0)
    started = time.monotonic()
    try:
        with pytest.raises(StoreError, match=r"did not answer \(ReadTimeout\)"):
            store.query("up", at=NOW)
    finally:
        store.close()
    assert time.monotonic() - started < 4


def test_what_the_store_calls_its_result_is_cut_short(hostile_store: HostileStore) -> None:
    hostile_store.answer({"status": "success", "data": {"resultType": "m" * 100_000, "result": []}})
    store = _store(hostile_store.url)
    try:
        with pytest.raises(StoreError) as raised:
            store.query("up", at=NOW)
    finally:
        store.close()
    assert len(str(raised.value)) < 120
