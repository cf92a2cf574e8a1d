"""Benchmark result files to performance-metric rows. Pure: bytes in, rows out, no I/O.

``parse_results`` recognises three formats by their content (never by file name):

pytest-benchmark (``pytest --benchmark-json``, or a file saved with ``--benchmark-autosave``)
    A JSON object with a ``benchmarks`` list. Each benchmark gives six rows,
    ``<fullname or name>.<stat>`` for ``mean``, ``median``, ``stddev``, ``min``, ``max`` in
    seconds and ``ops`` in operations per second (files older than pytest-benchmark 3 have no
    ``ops``: it is then 1/mean). Tags come from the benchmark (``group``, ``param`` or
    ``param.<name>``), ``machine_info`` (``machine.node``, ``machine.system``,
    ``machine.machine``, ``machine.cpu``, ``python``) and ``commit_info`` (``commit``,
    ``branch``). The run's time is the top-level ``datetime``, UTC, written sometimes with
    and sometimes without an offset: a naive one is read as UTC. ``stats.data``, the raw
    timings, is not read.

k6 end-of-test summary
    A JSON object with a ``metrics`` object. Both shapes k6 writes are read: the legacy
    ``--summary-export`` file, whose metrics are flat (``{"avg": 12.5, "p(95)": 30.1}``), and
    the ``handleSummary`` data, whose metrics keep their statistics under ``values``. Rows:
    ``http_req_duration.{avg,p90,p95,med}`` (ms), ``http_reqs.{rate,count}``,
    ``iterations.{count,rate}``, ``checks.pass_rate`` and ``http_req_failed.rate`` (percent),
    when the file has them, and ``k6.threshold.<metric>.<expression>`` for each threshold:
    1.0 when it passed, 0.0 when it failed. A summary does not say when the test ran.

CSV
    UTF-8 text whose first non-blank line is a header starting ``name,value,unit``. Each row is
    ``name,value,unit`` and then any number of ``key=value`` cells, which become tags.

Every failure is an ``ImportFailed`` whose message names the place and the problem, so that
an API can hand it straight back to whoever uploaded the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_RESULTS",
    "MAX_TAG_KEY_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "MAX_UNIT_LENGTH",
    "ImportFailed",
    "ParsedResult",
    "ParsedResults",
    "parse_results",
]

MAX_RESULTS: Final = 100_000
MAX_NAME_LENGTH: Final = 200
MAX_UNIT_LENGTH: Final = 32
MAX_TAG_KEY_LENGTH: Final = 64
MAX_TAG_VALUE_LENGTH: Final = 256

CSV_HEADER: Final = ("name", "value", "unit")

# Upload messages quote pieces of the file; a cap keeps one bad cell from flooding them.
_QUOTE_LIMIT: Final = 80


class ImportFailed(ValueError):
    """The file is not a results file Shipboard can read; the message says what is wrong."""


@dataclass(frozen=True)
class ParsedResult:
    name: str
    value: float
    unit: str
    tags: dict[str, str]
    timestamp: datetime | None


@dataclass(frozen=True)
class ParsedResults:
    format: str
    results: list[ParsedResult]


def parse_results(
    data: bytes, *, version: str | None = None, commit_sha: str | None = None
) -> ParsedResults:
    """Detect the format from content and parse.

    ``version`` and ``commit_sha``, when given, are added to every row as the tags ``version``
    and ``commit``; the caller knows better than the file which commit was measured.
    """
    try:
        # utf-8-sig: spreadsheets save CSV with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed("not valid UTF-8") from None
    if not text.strip():
        raise ImportFailed("the file is empty")

    overrides: dict[str, str] = {}
    if version is not None:
        overrides["version"] = _clip(version)
    if commit_sha is not None:
        overrides["commit"] = _clip(commit_sha)
    out = _Collector(overrides)

    document = _load_json(text)
    if document is _NOT_JSON:
        fmt = "csv"
        _parse_csv(text, out)
    elif not isinstance(document, dict):
        raise ImportFailed(
            "JSON, but not an object: expected pytest-benchmark JSON or a k6 summary"
        )
    elif "benchmarks" in document:
        fmt = "pytest-benchmark"
        _parse_pytest_benchmark(document, out)
    elif "metrics" in document or "root_group" in document:
        fmt = "k6"
        _parse_k6(document, out)
    else:
        raise ImportFailed(
            "JSON, but neither pytest-benchmark (no benchmarks list) "
            "nor a k6 summary (no metrics object)"
        )
    if not out.results:
        raise ImportFailed("no results in the file")
    return ParsedResults(format=fmt, results=out.results)


class _Collector:
    """Gathers rows and enforces what holds for every format: the cap, names, finite values."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.results: list[ParsedResult] = []
        for key, value in overrides.items():
            _check_storable(f"the {key} given", value)
        self._overrides = overrides
        # Rows of one benchmark share a tags dict: checking it once per dict, not once per
        # row, keeps a 100,000-row file cheap.
        self._checked_tags: Mapping[str, str] | None = None

    def add(
        self,
        where: str,
        name: str,
        value: float,
        unit: str,
        tags: Mapping[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        if len(name) > MAX_NAME_LENGTH:
            raise ImportFailed(
                f"{where}: the name {_quote(name)} is longer than {MAX_NAME_LENGTH} characters"
            )
        if not math.isfinite(value):
            raise ImportFailed(f"{where}: {name} is not a finite number ({value})")
        _check_storable(where, name)
        _check_storable(where, unit)
        if tags is not self._checked_tags:
            for key, tag_value in tags.items():
                _check_storable(where, key)
                _check_storable(where, tag_value)
            self._checked_tags = tags
        if len(self.results) >= MAX_RESULTS:
            raise ImportFailed(f"more than {MAX_RESULTS} results in the file")
        self.results.append(
            ParsedResult(
                name=name,
                value=value,
                unit=unit,
                # A fresh dict per row: callers may change one row's tags without the others'.
                tags={**tags, **self._overrides},
                timestamp=timestamp,
            )
        )


# json.loads can legitimately return None, so "not JSON" needs its own marker.
_NOT_JSON: Final = object()


def _load_json(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise ImportFailed("JSON nested too deeply") from None
    except ValueError as exc:
        # A file that opens like JSON is JSON gone wrong; say where, not "not CSV".
        if text.lstrip()[:1] in ("{", "["):
            raise ImportFailed(f"not valid JSON: {_quote(str(exc), quotes=False)}") from None
        return _NOT_JSON


# --- pytest-benchmark ---------------------------------------------------------------------

_PB = "pytest-benchmark"
_PB_SECONDS_STATS: Final = ("mean", "median", "stddev", "min", "max")


def _parse_pytest_benchmark(document: dict[str, object], out: _Collector) -> None:
    benchmarks = document["benchmarks"]
    if not isinstance(benchmarks, list):
        raise ImportFailed(f"{_PB}: benchmarks is not a list")
    run_tags = _pb_run_tags(document)
    timestamp = _pb_timestamp(document.get("datetime"))
    for index, bench in enumerate(benchmarks):
        path = f"{_PB}: benchmarks[{index}]"
        if not isinstance(bench, dict):
            raise ImportFailed(f"{path} is not an object")
        base = _pb_name(bench)
        if base is None:
            raise ImportFailed(f"{path} has neither a fullname nor a name")
        where = f"{path} ({_quote(base)})"
        stats = bench.get("stats")
        if not isinstance(stats, dict):
            raise ImportFailed(f"{path}.stats is missing or not an object ({_quote(base)})")
        if "mean" not in stats:
            raise ImportFailed(f"{path}.stats.mean is missing ({_quote(base)})")
        tags = {**run_tags, **_pb_bench_tags(bench, where)}
        values: dict[str, float] = {}
        for stat in (*_PB_SECONDS_STATS, "ops"):
            raw = stats.get(stat)
            number = _number(raw)
            if number is None:
                # null is what pytest-benchmark writes for a statistic it could not compute.
                if stat == "mean" or raw is not None:
                    raise ImportFailed(f"{path}.stats.{stat} is not a number ({_quote(base)})")
                continue
            if not math.isfinite(number):
                raise ImportFailed(
                    f"{path}.stats.{stat} is not a finite number ({number}) ({_quote(base)})"
                )
            values[stat] = number
        if "ops" not in values and values["mean"] > 0:
            values["ops"] = 1.0 / values["mean"]
        for stat, number in values.items():
            unit = "ops/s" if stat == "ops" else "s"
            out.add(where, f"{base}.{stat}", number, unit, tags, timestamp)


def _pb_name(bench: dict[str, object]) -> str | None:
    for key in ("fullname", "name"):
        candidate = bench.get(key)
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _pb_bench_tags(bench: dict[str, object], where: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    group = bench.get("group")
    if group is not None:
        tags["group"] = _tag_text(group, where)
    params = bench.get("params")
    if isinstance(params, dict) and params:
        for key, value in params.items():
            tags[f"param.{key}"[:MAX_TAG_KEY_LENGTH]] = _tag_text(value, where)
    else:
        param = bench.get("param")
        if param is not None:
            tags["param"] = _tag_text(param, where)
    return tags


def _pb_run_tags(document: dict[str, object]) -> dict[str, str]:
    # Machine and commit details only label the rows: a damaged one is dropped, not fatal.
    tags: dict[str, str] = {}
    machine = document.get("machine_info")
    if isinstance(machine, dict):
        for key in ("node", "system", "machine"):
            text = _plain_text(machine.get(key))
            if text:
                tags[f"machine.{key}"] = text
        cpu = machine.get("cpu")
        if isinstance(cpu, dict):
            # py-cpuinfo renamed "brand" to "brand_raw" in version 7.
            brand = _plain_text(cpu.get("brand")) or _plain_text(cpu.get("brand_raw"))
            if brand:
                tags["machine.cpu"] = brand
        python = " ".join(
            part
            for part in (
                _plain_text(machine.get("python_implementation")),
                _plain_text(machine.get("python_version")),
            )
            if part
        )
        if python:
            tags["python"] = _clip(python)
    commit = document.get("commit_info")
    if isinstance(commit, dict):
        # Outside a repository pytest-benchmark writes placeholders, which would pose as a
        # commit and a branch.
        commit_id = _plain_text(commit.get("id"))
        if commit_id and commit_id != "unversioned":
            tags["commit"] = commit_id
        branch = _plain_text(commit.get("branch"))
        if branch and branch != "(unknown)":
            tags["branch"] = branch
    return tags


def _pb_timestamp(raw: object) -> datetime | None:
    if raw is None:
        return None
    # A run filed under the wrong time would skew every trend it lands in: refuse instead.
    if not isinstance(raw, str):
        raise ImportFailed(f"{_PB}: datetime is not a string")
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            # pytest-benchmark has long written UTC; some versions left the offset off
            # (3.2.2 did, and a 2.5.0 history mixes both).
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ImportFailed(f"{_PB}: datetime {_quote(raw)} is not an ISO 8601 time") from None


# --- k6 -----------------------------------------------------------------------------------

_K6 = "k6 summary"

# (k6 metric, statistic as k6 names it, row suffix, unit). k6 reports times in milliseconds.
_K6_STATS: Final = (
    ("http_req_duration", "avg", "avg", "ms"),
    ("http_req_duration", "p(90)", "p90", "ms"),
    ("http_req_duration", "p(95)", "p95", "ms"),
    ("http_req_duration", "med", "med", "ms"),
    ("http_reqs", "rate", "rate", "req/s"),
    ("http_reqs", "count", "count", "count"),
    ("iterations", "count", "count", "count"),
    ("iterations", "rate", "rate", "iterations/s"),
)


def _parse_k6(document: dict[str, object], out: _Collector) -> None:
    metrics = document.get("metrics")
    if metrics is None:
        raise ImportFailed(f"{_K6}: no metrics object")
    if not isinstance(metrics, dict):
        raise ImportFailed(f"{_K6}: metrics is not an object")
    for metric_name, metric in metrics.items():
        if not isinstance(metric, dict):
            raise ImportFailed(f"{_K6}: metrics.{_quote(metric_name)} is not an object")
    no_tags: dict[str, str] = {}

    for metric_name, stat, suffix, unit in _K6_STATS:
        values = _k6_values(metrics, metric_name)
        if values is None:
            continue
        number = _k6_number(values, metric_name, stat)
        if number is not None:
            name = f"{metric_name}.{suffix}"
            out.add(_K6, name, number, unit, no_tags)

    # checks counts passed checks; http_req_failed is a Rate of "request failed", so there
    # "passes" counts FAILED requests and the fraction is the failure rate.
    for metric_name, row_name, prefer_counts in (
        ("checks", "checks.pass_rate", True),
        ("http_req_failed", "http_req_failed.rate", False),
    ):
        values = _k6_values(metrics, metric_name)
        if values is None:
            continue
        fraction = _k6_fraction(values, metric_name, prefer_counts=prefer_counts)
        if fraction is not None:
            out.add(_K6, row_name, 100.0 * fraction, "%", no_tags)

    for metric_name, metric in metrics.items():
        _k6_thresholds(metric_name, metric, out)


def _k6_values(metrics: dict[str, object], metric_name: str) -> dict[str, object] | None:
    metric = metrics.get(metric_name)
    if not isinstance(metric, dict):
        return None
    if "values" not in metric:
        return metric
    values = metric["values"]
    if not isinstance(values, dict):
        raise ImportFailed(f"{_K6}: metrics.{metric_name}.values is not an object")
    return values


def _k6_number(values: dict[str, object], metric_name: str, stat: str) -> float | None:
    raw = values.get(stat)
    if raw is None:
        return None
    number = _number(raw)
    if number is None:
        raise ImportFailed(f"{_K6}: {metric_name} {stat} is not a number")
    return number


def _k6_fraction(
    values: dict[str, object], metric_name: str, *, prefer_counts: bool
) -> float | None:
    """A Rate metric's fraction of true samples, from its counts or as k6 computed it."""
    passes = _k6_number(values, metric_name, "passes")
    fails = _k6_number(values, metric_name, "fails")
    from_counts = (
        passes / (passes + fails)
        if passes is not None and fails is not None and passes + fails > 0
        else None
    )
    # Legacy files call the fraction "value"; handleSummary calls it "rate".
    stated = _k6_number(values, metric_name, "value")
    if stated is None:
        stated = _k6_number(values, metric_name, "rate")
    if prefer_counts:
        return from_counts if from_counts is not None else stated
    return stated if stated is not None else from_counts


def _k6_thresholds(metric_name: str, metric: dict[str, object], out: _Collector) -> None:
    thresholds = metric.get("thresholds")
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise ImportFailed(f"{_K6}: metrics.{_quote(metric_name)}.thresholds is not an object")
    for expression, outcome in thresholds.items():
        if isinstance(outcome, bool):
            # Legacy --summary-export records whether the threshold was CROSSED: true = failed
            # (k6 issue #1498).
            passed = not outcome
        elif isinstance(outcome, dict) and isinstance(outcome.get("ok"), bool):
            passed = outcome["ok"]
        else:
            raise ImportFailed(
                f"{_K6}: threshold {_quote(expression)} of {_quote(metric_name)} "
                'is neither true/false nor {"ok": true/false}'
            )
        name = f"k6.threshold.{metric_name}.{expression}"
        out.add(_K6, name, 1.0 if passed else 0.0, "pass", {})


# --- CSV ----------------------------------------------------------------------------------

_NOT_CSV: Final = "not JSON, and not CSV with a header name,value,unit"


class _CsvReader(Protocol):
    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


def _parse_csv(text: str, out: _Collector) -> None:
    # newline="" hands line endings to the csv module, which is what lets quoted cells span lines.
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = _csv_rows(reader)
    first = next(rows, None)
    if first is None or tuple(cell.strip().lower() for cell in first[:3]) != CSV_HEADER:
        raise ImportFailed(_NOT_CSV)
    for row in rows:
        where = f"CSV line {reader.line_num}"
        if len(row) < len(CSV_HEADER):
            raise ImportFailed(f"{where}: expected name,value,unit, found {len(row)} cell(s)")
        name, raw_value, unit = (cell.strip() for cell in row[:3])
        if not name:
            raise ImportFailed(f"{where}: the name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise ImportFailed(f"{where}: the name is longer than {MAX_NAME_LENGTH} characters")
        try:
            value = float(raw_value)
        except ValueError:
            raise ImportFailed(f"{where}: value {_quote(raw_value)} is not a number") from None
        if not math.isfinite(value):
            raise ImportFailed(f"{where}: value {_quote(raw_value)} is not a finite number")
        if not unit:
            raise ImportFailed(f"{where}: the unit is empty")
        if len(unit) > MAX_UNIT_LENGTH:
            raise ImportFailed(f"{where}: the unit is longer than {MAX_UNIT_LENGTH} characters")
        out.add(where, name, value, unit, _csv_tags(row[3:], where))


def _csv_rows(reader: _CsvReader) -> Iterator[list[str]]:
    """The non-blank rows; a csv.Error (say, a cell over the csv field limit) is ImportFailed."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed(f"CSV line {reader.line_num}: {exc}") from None
        if any(cell.strip() for cell in row):
            yield row


def _csv_tags(cells: list[str], where: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for raw in cells:
        cell = raw.strip()
        if not cell:
            # A trailing comma is a spreadsheet habit, not a mistake worth refusing a file for.
            continue
        key, sep, value = cell.partition("=")
        key = key.strip()
        if not sep:
            raise ImportFailed(f"{where}: extra cell {_quote(cell)} is not a tag key=value")
        if not key:
            raise ImportFailed(f"{where}: tag {_quote(cell)} has an empty key")
        if len(key) > MAX_TAG_KEY_LENGTH:
            raise ImportFailed(
                f"{where}: tag key {_quote(key)} is longer than {MAX_TAG_KEY_LENGTH} characters"
            )
        tags[key] = _clip(value.strip())
    return tags


# --- shared helpers -----------------------------------------------------------------------


def _number(raw: object) -> float | None:
    """A JSON number as a float, possibly non-finite; None for anything else, null included."""
    # bool is an int subclass, but true is not 1.0 in a results file.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        return float(raw)
    except OverflowError:
        # An integer beyond float range: report it like any other infinite value.
        return math.inf


def _plain_text(raw: object) -> str:
    return _clip(raw) if isinstance(raw, str) else ""


def _tag_text(raw: object, where: str) -> str:
    if isinstance(raw, str):
        return _clip(raw)
    try:
        if raw is None or isinstance(raw, bool | int | float):
            # str(), not JSON, so a tag reads as pytest shows the parameter in the test id.
            return _clip(str(raw))
        return _clip(json.dumps(raw, ensure_ascii=False, sort_keys=True))
    except (RecursionError, ValueError, TypeError):
        raise ImportFailed(f"{where}: a parameter is nested too deeply to label") from None


def _check_storable(where: str, text: str) -> None:
    # PostgreSQL text and JSONB cannot hold NUL, and a lone surrogate (JSON allows "\ud800")
    # cannot be encoded for the database at all: refuse both here, with a place to point to.
    if "\x00" in text:
        raise ImportFailed(f"{where}: {_quote(text)} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ImportFailed(f"{where}: {_quote(text)} is not valid Unicode text") from None


def _clip(text: str) -> str:
    return text[:MAX_TAG_VALUE_LENGTH]


def _quote(text: str, *, quotes: bool = True) -> str:
    shown = repr(text)[1:-1]
    if len(shown) > _QUOTE_LIMIT:
        shown = shown[: _QUOTE_LIMIT - 1] + "…"
    return f"'{shown}'" if quotes else shown
