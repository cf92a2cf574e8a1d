"""Whatever a metrics store answers a series query with, ``GET /api/v1/metrics/series`` says
503 and what was wrong, never 500 and never a series: too large, not JSON, or JSON in any shape
but the Prometheus API's matrix of ``[time, "value"]`` pairs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from shipboard.core.promql import MAX_RESPONSE_BYTES
from shipboard.core.time import utcnow
from tests.support.live import LiveServer, free_port
from tests.support.problems import assert_problem


class ScriptedStore:
    """Answers every GET with ``body`` (status 200, JSON content type)."""

    def __init__(self) -> None:
        self.body = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedStore]:
    store = ScriptedStore()
    yield store
    store.server.shutdown()
    store.server.server_close()


def _answer(result: Any, kind: str = "matrix") -> bytes:
    return orjson.dumps({"status": "success", "data": {"resultType": kind, "result": result}})


def _matrix(values: Any) -> bytes:
    return _answer([{"metric": {}, "values": values}])


UNTIL = utcnow().replace(second=0, microsecond=0)
SINCE = UNTIL - timedelta(minutes=3)
AT = SINCE.timestamp() + 60

HOSTILE = [
    (b"[" + b" " * MAX_RESPONSE_BYTES + b"]", "over 32 MiB"),
    (b"<html>upstream</html>", "answered 200 without JSON"),
    (b"[1, 2]", "answered 200 with unexpected JSON"),
    (orjson.dumps({"status": "success", "data": []}), "has no data"),
    (_answer([], kind="vector"), "did not answer a matrix"),
    (_answer({}), "did not answer a matrix"),
    (_answer([1]), "no values"),
    (_matrix({"a": 1}), "no values"),
    (_matrix([[AT, "1", "2"]]), "not [time, value]"),
    (_matrix(["12"]), "not [time, value]"),
    (_matrix([{"t": AT}]), "not [time, value]"),
    (_matrix([[AT, True]]), "not a number"),
    (_matrix([[AT, None]]), "not a number"),
    (_matrix([[AT, ["1"]]]), "not a number"),
    (_matrix([[AT, "abc"]]), "not a number"),
    (_matrix([["soon", "1"]]), "not a number"),
    (
        _answer([{"metric": {}, "values": [[AT, "1"]]}, {"metric": {"a": "b"}, "values": []}]),
        "several series",
    ),
]


def test_every_hostile_answer_is_a_503_saying_what(
    serve: Callable[..., LiveServer],
    make_user: Callable[[str, str], str],
    scripted: ScriptedStore,
) -> None:
    live = serve(prometheus_url=scripted.url)
    params = {
        "name": "checkout.latency",
        "since": SINCE.isoformat(),
        "until": UNTIL.isoformat(),
        "step": 60,
    }
    headers = {"Authorization": f"Bearer {make_user('reader', 'viewer')}"}
    with httpx.Client(base_url=live.base_url, headers=headers, timeout=60) as client:
        scripted.body = _matrix([[AT, "1.5"], [AT + 60, "2.5"]])
        fine = client.get("/api/v1/metrics/series", params=params)
        assert fine.status_code == 200, fine.text
        assert [v for _, v in fine.json()["points"]] == [1.5, 2.5]
        for body, said in HOSTILE:
            scripted.body = body
            answer = client.get("/api/v1/metrics/series", params=params)
            detail = str(assert_problem(answer, 503)["detail"])
            assert said in detail, (body[:80], detail)
            assert answer.headers["Retry-After"] == "10"
        # A number that is not finite is the store's honest answer to this aggregation (a sum
        # past the largest float): the request is told to ask for another one.
        for value in ("+Inf", "NaN"):
            scripted.body = _matrix([[AT, "1.5"], [AT + 60, value]])
            refused = client.get("/api/v1/metrics/series", params={**params, "agg": "sum"})
            detail = str(assert_problem(refused, 422)["detail"])
            assert "sum of the bucket at" in detail
            assert "not a finite number: the store holds NaN or infinite samples" in detail
