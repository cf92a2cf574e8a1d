"""Reading the user's Prometheus-compatible store through its HTTP API (Prometheus,
VictoriaMetrics, Mimir's ``/prometheus``, Thanos Query): instant and range queries, validation of
a query before it is stored, and the template variables one query uses for every environment
and release.

Everything a store answers is untrusted input: bodies are read up to a bound, the JSON is
checked for the shapes the API documents (``vector``, ``scalar``, ``matrix``), and every failure
becomes a :class:`StoreError` that says what went wrong without echoing credentials.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import orjson
import structlog

from shipboard.core import deadline as deadline_
from shipboard.core.errors import InvalidInput
from shipboard.core.nulguard import scrub
from shipboard.core.redaction import redact_credentials

_log = structlog.get_logger("shipboard.promql")
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_QUERY_CHARS = 4096
# What a query may name, filled in per deployment when it runs (pipelines/watch.py).
VARIABLES = (
    "environment",
    "version",
    "deployment_id",
    "deployment_started_at",
    "deployment_completed_at",
)
_SAMPLE_VALUES = {
    "environment": "production",
    "version": "1.2.3",
    "deployment_id": "00000000-0000-0000-0000-000000000000",
    "deployment_started_at": "1700000000",
    "deployment_completed_at": "1700000060",
}
# $name or ${name}: the variables Argo Rollouts and Grafana users already write.
_VARIABLE = re.compile(r"\$(?:\{([a-z_][a-z0-9_]*)\}|([a-z_][a-z0-9_]*))")


class StoreError(Exception):
    """The store could not answer (unreachable, an error status, or an answer that is not the
    Prometheus API's). ``bad_query`` is True when the store refused the query itself."""

    def __init__(self, message: str, *, bad_query: bool = False) -> None:
        super().__init__(message)
        self.bad_query = bad_query


@dataclass(frozen=True)
class StoreSettings:
    url: str
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout_s: float = 10.0
    # SHIPBOARD_PROMETHEUS_HEADERS (core/extraheaders.py): a tenant, an API key.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # A whole request, however slowly the store sends (core/deadline.py).
    total_s: float = 30.0


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)


def render(query: str, variables: Mapping[str, str]) -> str:
    """``query`` with ``$name``/``${name}`` replaced by the value, escaped for a PromQL
    double-quoted string (the place label values go), so no value can end the string and add
    matchers of its own. An unknown variable is an error, not an empty string."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            known = ", ".join(f"${v}" for v in sorted(variables))
            raise InvalidInput(f"unknown variable ${name} in the query (known: {known})")
        return escape(variables[name])

    return _VARIABLE.sub(substitute, query)


def check_query(query: str, *, variables: Collection[str] = VARIABLES) -> None:
    """Refuse, on write, a query that could never run: a variable outside ``variables`` (the
    ones the place the query runs fills in), or text that is not PromQL once the variables are
    filled in (parsed by promql-parser, the Rust port of Prometheus' own parser). Raises
    ``ValueError`` saying what is wrong."""
    import promql_parser

    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"a query has at most {MAX_QUERY_CHARS} characters")
    try:
        rendered = render(query, {k: v for k, v in _SAMPLE_VALUES.items() if k in variables})
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None
    try:
        promql_parser.parse(rendered)
    except ValueError as exc:
        raise ValueError(f"not a PromQL query: {exc}") from None
    except BaseException as exc:
        # The parser is Rust: a panic there (``up offset Inf`` converts an infinite number of
        # seconds to a Duration) reaches Python as pyo3's PanicException, a BaseException that
        # no `except Exception` would stop; it would end the request as a 500. KeyboardInterrupt
        # and the like still go through.
        if type(exc).__name__ != "PanicException":
            raise
        raise ValueError(f"not a PromQL query: the parser gave up ({str(exc)[:200]})") from None


NOT_CONFIGURED = "SHIPBOARD_PROMETHEUS_URL is not set"
# How many of a round's queries are put to the store at once: enough that a store which hangs
# costs a round one timeout rather than one per query, few enough not to flood it.
ROUND_WORKERS = 8
K = TypeVar("K", bound=Hashable)


def ask(
    store: PromStore | None, query: str, *, at: datetime, deadline: float | None = None
) -> list[Sample] | str:
    """The samples an instant query gives at ``at``, or why there are none (a sentence a
    verdict can show: the store's own error, never its credentials). NaN samples are kept; the
    caller's condition decides what they mean. ``deadline`` (``time.monotonic()``) ends a
    slow answer early: it caps the client's own total deadline (``core/deadline.py``)."""
    if store is None:
        return NOT_CONFIGURED
    started = time.perf_counter()
    try:
        with deadline_.capped(deadline):
            samples = store.query(query, at=at)
    except StoreError as exc:
        reason = str(exc)
        # Most of the client's own reasons already name the store; a store's error does not.
        return reason if reason.startswith("the metrics store") else f"the metrics store: {reason}"
    _log.debug("promql_query", seconds=round(time.perf_counter() - started, 4))
    return samples


def ask_all(
    store: PromStore | None,
    queries: Mapping[K, str],
    *,
    at: datetime,
    within_s: float,
    workers: int = ROUND_WORKERS,
) -> dict[K, list[Sample] | str]:
    """:func:`ask` for every query, ``workers`` at a time, all within ``within_s`` seconds: a
    query without an answer by then gets a sentence saying so. A store that hangs costs the
    caller about one ``within_s``, however many queries there are.

    A query still being asked at the deadline is left to its worker thread, whose I/O ends at
    that same deadline (``ask`` caps the client's own, ``core/deadline.py``); nothing waits
    for it (the pool is shut down without waiting, queries not yet started are dropped)."""
    deadline = time.monotonic() + within_s
    if store is None:
        return dict.fromkeys(queries, NOT_CONFIGURED)
    late = (
        f"the metrics store: no answer within the round's {within_s:g} s (the store is slow "
        "or hangs"
        + ("" if len(queries) <= workers else f"; {len(queries)} queries shared {workers} workers")
        + ")"
    )

    def one(query: str) -> list[Sample] | str:
        # A worker freed after the deadline may still pick up a query the pool did not drop yet.
        if time.monotonic() > deadline:
            return late
        answer = ask(store, query, at=at, deadline=deadline)
        # Cut off by the round's deadline (it caps the client's I/O): say so as the round does.
        return late if isinstance(answer, str) and time.monotonic() >= deadline else answer

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="promql")
    try:
        futures = {key: pool.submit(one, query) for key, query in queries.items()}
        wait_for(futures.values(), timeout=within_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    answers = {
        key: future.result() if future.done() and not future.cancelled() else late
        for key, future in futures.items()
    }
    if unanswered := sum(1 for answer in answers.values() if answer is late):
        _log.warning("promql_round_late", unanswered=unanswered, queries=len(queries))
    return answers


def escape(value: str) -> str:
    """``value`` as the inside of a PromQL double-quoted string (a label matcher's value):
    backslash, quote and line breaks escaped, so no value can end the string early."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


class PromStore:
    """One store. The ``httpx.Client`` is the caller's to close when it passes one."""

    def __init__(self, settings: StoreSettings, *, client: httpx.Client | None = None) -> None:
        self.settings = settings
        auth: httpx.Auth | None = None
        headers: dict[str, str] = dict(settings.headers)
        if settings.bearer_token:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        elif settings.username is not None:
            auth = httpx.BasicAuth(settings.username, settings.password or "")
        self._client = client or deadline_.client(
            timeout_s=settings.timeout_s,
            total_s=settings.total_s,
            verify=settings.ca_file or True,
            headers=headers,
            auth=auth,
            follow_redirects=False,
        )
        self._base = settings.url.rstrip("/")

    def close(self) -> None:
        self._client.close()

    def query(self, expr: str, *, at: datetime) -> list[Sample]:
        """An instant query: a vector's samples, or one unlabelled sample for a scalar."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at.timestamp():.3f}"})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [Sample(labels={}, value=_number(_pair(result)[1]))]
        if kind == "vector" and isinstance(result, list):
            return [
                Sample(labels=_labels(item), value=_number(_pair(item.get("value"))[1]))
                for item in result
                if isinstance(item, dict)
            ]
        # The store's own word, cut short: it reaches responses and verdicts.
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise StoreError(f"the store answered a {shown!r} result; an instant query needs a vector")

    def query_range(
        self, expr: str, *, start: datetime, end: datetime, step_s: float
    ) -> list[RangeSeries]:
        """A range query: ``expr`` evaluated at ``start``, ``start + step`` … up to ``end``."""
        start_ms, step_ms = round(start.timestamp() * 1000), round(step_s * 1000)
        params = {
            "query": expr,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step_s:g}",
        }
        if step_ms and start_ms % step_ms:
            # VictoriaMetrics moves a start that is not a multiple of the step onto one (for
            # its cache) unless told not to; other stores ignore the parameter.
            params["nocache"] = "1"
        data = self._get("/api/v1/query_range", params)
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise StoreError("the store's range query did not answer a matrix")
        series = []
        for item in result:
            if not isinstance(item, dict) or not isinstance(item.get("values"), list):
                raise StoreError("a series of the store's answer has no values")
            series.append(RangeSeries(labels=_labels(item), points=_points(item["values"])))
        return series

    def label_values(self, label: str, *, match: str, start: datetime, end: datetime) -> list[str]:
        """The values ``label`` takes on the series ``match`` selects between two times."""
        params = {
            "match[]": match,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
        }
        data = self._get_list(f"/api/v1/label/{label}/values", params)
        return sorted(str(value) for value in data if isinstance(value, str))

    def validate(self, expr: str, *, at: datetime) -> None:
        """Ask the store to parse and run ``expr`` at ``at`` (a time in the past, so nothing
        depends on data still arriving). A query the store refuses raises :class:`InvalidInput`
        with the store's own reason; a store that cannot answer raises :class:`StoreError`."""
        try:
            self.query(expr, at=at)
        except StoreError as exc:
            if exc.bad_query:
                raise InvalidInput(f"the metrics store refused the query: {exc}") from exc
            raise

    def _without_secrets(self, text: str) -> str:
        # The store's own error text reaches responses, verdicts and logs.
        settings = self.settings
        cleaned = redact_credentials(
            text,
            token=settings.bearer_token,
            username=settings.username,
            password=settings.password,
            extra=[value for _, value in settings.headers],
        )
        return scrub(cleaned)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        data = self._data(path, params)
        if not isinstance(data, dict):
            raise StoreError("the metrics store's answer has no data")
        return data

    def _get_list(self, path: str, params: dict[str, str]) -> list[Any]:
        data = self._data(path, params)
        if not isinstance(data, list):
            raise StoreError("the metrics store's answer has no list of values")
        return data

    def _data(self, path: str, params: dict[str, str]) -> Any:
        try:
            with self._client.stream("GET", self._base + path, params=params) as answer:
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise StoreError(
                            f"the store's answer is over {MAX_RESPONSE_BYTES >> 20} MiB; "
                            "narrow the query"
                        )
                status = answer.status_code
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.TimeoutException) and deadline_.cap_passed():
                # The caller's own deadline (``ask``), not the store's timeouts, ended it.
                raise StoreError("the metrics store's answer did not end in time") from exc
            raise StoreError(f"the metrics store did not answer ({type(exc).__name__})") from exc
        try:
            document = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            raise StoreError(f"the metrics store answered {status} without JSON") from None
        if not isinstance(document, dict):
            raise StoreError(f"the metrics store answered {status} with unexpected JSON")
        if document.get("status") != "success":
            reason = self._without_secrets(str(document.get("error") or f"status {status}"))[:500]
            # 400 and 422 are the API's answers to a query it cannot parse or run.
            raise StoreError(reason, bad_query=status in (400, 422))
        return document.get("data")


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise StoreError("a sample of the store's answer is not [time, value]")
    return value[0], value[1]


# The types orjson gives a JSON number or string; bool (an int to isinstance) is not one of them.
_SCALARS = frozenset({str, int, float})


def _points(values: list[Any]) -> list[tuple[float, float]]:
    """A matrix series' ``[[time, "value"], …]`` as floats, with the checks of ``_pair`` and
    ``_number`` written out in one loop: calling them for each pair of a 1,440-step answer
    cost 1.2 ms, this 0.5 ms."""
    points: list[tuple[float, float]] = []
    add, finite = points.append, math.isfinite
    try:
        for pair in values:
            if type(pair) is not list or len(pair) != 2:
                raise StoreError("a sample of the store's answer is not [time, value]")
            at, value = pair
            if type(at) not in _SCALARS or type(value) not in _SCALARS:
                raise StoreError("the store sent a value that is not a number")
            stamp = float(at)
            if not finite(stamp):
                # "+Inf" and "NaN" parse as numbers; as a sample's time they place it nowhere.
                raise StoreError("the store sent a sample time that is not a finite number")
            add((stamp, float(value)))
    except ValueError:
        raise StoreError("the store sent a value that is not a number") from None
    return points


def _number(value: Any) -> float:
    # The API sends values as strings ("1.5", "NaN", "+Inf"); anything else is not its answer.
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise StoreError("the store sent a value that is not a number")
    try:
        return float(value)
    except ValueError:
        raise StoreError("the store sent a value that is not a number") from None


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict):
        return {}
    # Labels end up in stored alerts and verdicts: PostgreSQL keeps no NUL in text or jsonb.
    return {scrub(str(k)): scrub(str(v)) for k, v in metric.items()}
