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

from shipboard.performance.importers import csv_format, k6, pytest_benchmark
from shipboard.performance.importers.common import (
    MAX_NAME_LENGTH,
    MAX_RESULTS,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_UNIT_LENGTH,
    NOT_JSON,
    Collector,
    ImportFailed,
    ParsedResult,
    ParsedResults,
    clip,
    load_json,
)

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
        overrides["version"] = clip(version)
    if commit_sha is not None:
        overrides["commit"] = clip(commit_sha)
    out = Collector(overrides)

    document = load_json(text)
    if document is NOT_JSON:
        fmt = "csv"
        csv_format.parse(text, out)
    elif not isinstance(document, dict):
        raise ImportFailed(
            "JSON, but not an object: expected pytest-benchmark JSON or a k6 summary"
        )
    elif "benchmarks" in document:
        fmt = "pytest-benchmark"
        pytest_benchmark.parse(document, out)
    elif "metrics" in document or "root_group" in document:
        fmt = "k6"
        k6.parse(document, out)
    else:
        raise ImportFailed(
            "JSON, but neither pytest-benchmark (no benchmarks list) "
            "nor a k6 summary (no metrics object)"
        )
    if not out.results:
        raise ImportFailed("no results in the file")
    return ParsedResults(format=fmt, results=out.results)
