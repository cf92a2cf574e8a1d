"""Benchmark result importers: real pytest-benchmark and k6 files give the values they hold.

The fixtures under fixtures/metrics are unedited copies of the shared ones (see the shared
MANIFEST for sources); where a test needs a variant it changes a copy in memory.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipboard.performance.importers import (
    MAX_RESULTS,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    ImportFailed,
    ParsedResult,
    ParsedResults,
    parse_results,
)
from tests.support.paths import FIXTURES as FIXTURES_ROOT

FIXTURES = FIXTURES_ROOT / "metrics"
PYTEST_OUTPUT = FIXTURES / "pytest-benchmark" / "github-action-benchmark" / "pytest_output.json"
SEVERAL_UNITS = (
    FIXTURES / "pytest-benchmark" / "github-action-benchmark" / "pytest_several_units.json"
)
STORAGE = FIXTURES / "pytest-benchmark" / "test_storage"
K6_SWEET = FIXTURES / "k6" / "Sweet-Poision_rate-limiter_k6-summary@5b7e097.json"
K6_RAGHAV = FIXTURES / "k6" / "raghavguptaa7_rate-limiter-service_k6-summary.json"

STATS = ("mean", "median", "stddev", "min", "max", "ops")


def by_name(parsed: ParsedResults) -> dict[str, ParsedResult]:
    rows = {row.name: row for row in parsed.results}
    assert len(rows) == len(parsed.results), "row names repeat"
    return rows


def failure(data: bytes | str, **kwargs: str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(ImportFailed) as caught:
        parse_results(raw, **kwargs)
    return str(caught.value)


def as_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


# --- pytest-benchmark ---------------------------------------------------------------------


def test_pytest_benchmark_output_gives_six_rows_per_benchmark_with_the_files_values() -> None:
    parsed = parse_results(PYTEST_OUTPUT.read_bytes())

    assert parsed.format == "pytest-benchmark"
    assert [row.name for row in parsed.results] == [
        f"bench.py::{test}.{stat}" for test in ("test_fib_10", "test_fib_20") for stat in STATS
    ]
    rows = by_name(parsed)
    fib_10 = {stat: rows[f"bench.py::test_fib_10.{stat}"].value for stat in STATS}
    assert fib_10 == {
        "mean": 2.408868133322941e-05,
        "median": 2.2300000000363696e-05,
        "stddev": 6.175090189861328e-06,
        "min": 2.2067000000181025e-05,
        "max": 0.0003125999999999962,
        "ops": 41513.272817492856,
    }
    assert rows["bench.py::test_fib_20.mean"].value == 0.002985030672661863
    assert rows["bench.py::test_fib_20.ops"].value == 335.0049328331567
    assert {row.unit for row in parsed.results if row.name.endswith(".ops")} == {"ops/s"}
    assert {row.unit for row in parsed.results if not row.name.endswith(".ops")} == {"s"}
    # The naive "2019-11-17T02:22:16.817862" is UTC.
    when = datetime(2019, 11, 17, 2, 22, 16, 817862, tzinfo=UTC)
    assert {row.timestamp for row in parsed.results} == {when}
    # group and param are null in this file, so neither becomes a tag.
    assert rows["bench.py::test_fib_10.mean"].tags == {
        "machine.node": "Corgi.local",
        "machine.system": "Darwin",
        "machine.machine": "x86_64",
        "machine.cpu": "Intel(R) Core(TM) i7-4771 CPU @ 3.50GHz",
        "python": "CPython 3.7.5",
        "commit": "9d55ab0434c9088746ae2d134702d782bf088644",
        "branch": "pytest",
    }


def test_stats_data_with_a_string_in_it_is_ignored() -> None:
    document = json.loads(PYTEST_OUTPUT.read_bytes())
    assert "... omitted to keep this file small" in document["benchmarks"][0]["stats"]["data"]
    # Even data that is no list at all does not matter: it is never read.
    document["benchmarks"][0]["stats"]["data"] = {"not": "a list"}
    assert len(parse_results(as_bytes(document)).results) == 12


def test_several_units_spans_nanoseconds_to_seconds() -> None:
    parsed = parse_results(SEVERAL_UNITS.read_bytes())
    rows = by_name(parsed)

    assert len(parsed.results) == 24
    assert rows["bench.py::test_fib_1.mean"].value == 1.4995610248628836e-07
    assert rows["bench.py::test_sleep_2.mean"].value == 2.0038430469999997
    assert rows["bench.py::test_sleep_2.mean"].value == pytest.approx(2.0038, abs=1e-4)
    assert rows["bench.py::test_sleep_2.ops"].value == 0.49904108083570886
    assert rows["bench.py::test_sleep_2.ops"].unit == "ops/s"
    assert rows["bench.py::test_fib_1.mean"].tags["machine.cpu"] == (
        "Intel(R) Core(TM) i5-5257U CPU @ 2.70GHz"
    )
    assert rows["bench.py::test_fib_1.mean"].tags["branch"] == "master"
    assert {row.timestamp for row in parsed.results} == {
        datetime(2019, 12, 6, 8, 58, 58, 115974, tzinfo=UTC)
    }


def test_thirty_saved_runs_form_a_time_series_in_utc() -> None:
    files = sorted(STORAGE.glob("*.json"))
    assert len(files) == 30
    runs = [parse_results(path.read_bytes()) for path in files]

    stamps = []
    for run in runs:
        assert len(run.results) == 6
        assert len({row.timestamp for row in run.results}) == 1
        stamps.append(run.results[0].timestamp)
    assert all(stamp is not None and stamp.tzinfo is UTC for stamp in stamps)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 30
    # 0001 says "+00:00", 0002 is naive: both are read as UTC.
    assert stamps[0] == datetime(2015, 8, 15, 0, 1, 46, 250433, tzinfo=UTC)
    assert stamps[1] == datetime(2015, 8, 15, 0, 1, 51, 557705, tzinfo=UTC)
    assert stamps[-1] == datetime(2015, 8, 15, 0, 4, 18, 687119, tzinfo=UTC)

    first = by_name(runs[0])
    name = "tests/test_normal.py::test_xfast_parametrized[0]"
    assert first[f"{name}.mean"].value == 2.622408132654948e-07
    assert first[f"{name}.median"].value == 2.2016643907464864e-07
    # These files predate stats.ops: it is 1/mean.
    assert first[f"{name}.ops"].value == 1 / 2.622408132654948e-07
    assert first[f"{name}.ops"].unit == "ops/s"
    assert by_name(runs[-1])[f"{name}.mean"].value == 2.61205074138546e-07
    assert first[f"{name}.mean"].tags == {
        "machine.node": "minibox",
        "machine.system": "Linux",
        "machine.machine": "x86_64",
        "python": "CPython 2.7.3",
        "commit": "5b78858eb718649a31fb93d8dc96ca2cee41a4cd",
    }


def test_version_and_commit_arguments_tag_every_row_and_override_the_files_commit() -> None:
    parsed = parse_results(PYTEST_OUTPUT.read_bytes(), version="1.4.0", commit_sha="abc1234")
    for row in parsed.results:
        assert row.tags["version"] == "1.4.0"
        assert row.tags["commit"] == "abc1234"
        assert row.tags["branch"] == "pytest"
    # Each row owns its tags: changing one does not change another.
    parsed.results[0].tags["x"] = "y"
    assert "x" not in parsed.results[1].tags


def _one_benchmark(**fields: object) -> dict[str, object]:
    bench: dict[str, object] = {"name": "test_a", "stats": {"mean": 0.5}}
    bench.update(fields)
    return {"benchmarks": [bench]}


def test_params_become_param_dot_key_tags_and_a_bare_param_becomes_param() -> None:
    params = _one_benchmark(
        group="io",
        param="5-fast",
        params={"n": 5, "mode": "fast", "flag": True, "shape": [1, 2], "none": None},
    )
    tags = parse_results(as_bytes(params)).results[0].tags
    assert tags == {
        "group": "io",
        "param.n": "5",
        "param.mode": "fast",
        "param.flag": "True",
        "param.shape": "[1, 2]",
        "param.none": "None",
    }
    only_param = parse_results(as_bytes(_one_benchmark(param="x1", params=None)))
    assert only_param.results[0].tags == {"param": "x1"}


def test_long_tag_values_are_truncated_and_long_param_keys_cut() -> None:
    document = _one_benchmark(params={"k" * 100: "v" * 1000}, group="g" * 300)
    tags = parse_results(as_bytes(document)).results[0].tags
    assert tags["group"] == "g" * MAX_TAG_VALUE_LENGTH
    key = ("param." + "k" * 100)[:MAX_TAG_KEY_LENGTH]
    assert tags[key] == "v" * MAX_TAG_VALUE_LENGTH
    assert all(len(k) <= MAX_TAG_KEY_LENGTH for k in tags)


def test_missing_optional_stats_are_skipped_and_ops_is_not_invented_for_a_zero_mean() -> None:
    rows = by_name(parse_results(as_bytes(_one_benchmark(stats={"mean": 0, "max": None}))))
    assert list(rows) == ["test_a.mean"]
    assert rows["test_a.mean"].timestamp is None


def test_timestamps_with_an_offset_are_converted_to_utc() -> None:
    document = {**_one_benchmark(), "datetime": "2024-03-01T09:00:00+09:00"}
    assert parse_results(as_bytes(document)).results[0].timestamp == datetime(
        2024, 3, 1, 0, 0, tzinfo=UTC
    )


def test_placeholders_written_outside_a_repository_are_not_tags() -> None:
    document = {**_one_benchmark(), "commit_info": {"id": "unversioned", "branch": "(unknown)"}}
    assert parse_results(as_bytes(document)).results[0].tags == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"benchmarks": "x"}, "pytest-benchmark: benchmarks is not a list"),
        ({"benchmarks": [1]}, "pytest-benchmark: benchmarks[0] is not an object"),
        ({"benchmarks": [{"stats": {"mean": 1}}]}, "benchmarks[0] has neither a fullname"),
        (
            {"benchmarks": [{"name": "ok", "stats": {"mean": 1}}, {"name": "test_b"}]},
            "pytest-benchmark: benchmarks[1].stats is missing or not an object ('test_b')",
        ),
        (
            _one_benchmark(stats={"median": 1}),
            "pytest-benchmark: benchmarks[0].stats.mean is missing ('test_a')",
        ),
        (
            {
                "benchmarks": [
                    {"name": "ok", "stats": {"mean": 1}},
                    {"fullname": "bench.py::test_b", "stats": {"mean": "fast"}},
                ]
            },
            "pytest-benchmark: benchmarks[1].stats.mean is not a number ('bench.py::test_b')",
        ),
        (
            _one_benchmark(stats={"mean": None}),
            "pytest-benchmark: benchmarks[0].stats.mean is not a number",
        ),
        (
            _one_benchmark(stats={"mean": True}),
            "pytest-benchmark: benchmarks[0].stats.mean is not a number",
        ),
        (
            _one_benchmark(stats={"mean": 1, "stddev": "wide"}),
            "pytest-benchmark: benchmarks[0].stats.stddev is not a number ('test_a')",
        ),
        ({**_one_benchmark(), "datetime": 5}, "pytest-benchmark: datetime is not a string"),
        (
            {**_one_benchmark(), "datetime": "yesterday"},
            "pytest-benchmark: datetime 'yesterday' is not an ISO 8601 time",
        ),
        ({"benchmarks": []}, "no results in the file"),
        (_one_benchmark(name="a" * 300), "is longer than 200 characters"),
        (_one_benchmark(name="a\x00b"), "contains a NUL character"),
        (_one_benchmark(group="\ud800"), "is not valid Unicode text"),
    ],
)
def test_bad_pytest_benchmark_files_say_what_is_wrong(document: object, message: str) -> None:
    assert message in failure(as_bytes(document))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"benchmarks": [{"name": "a", "stats": {"mean": NaN}}]}', "stats.mean"),
        ('{"benchmarks": [{"name": "a", "stats": {"mean": 1, "max": Infinity}}]}', "stats.max"),
        ('{"benchmarks": [{"name": "a", "stats": {"mean": 1e999}}]}', "stats.mean"),
        ('{"benchmarks": [{"name": "a", "stats": {"mean": 1' + "0" * 400 + "}}]}", "stats.mean"),
    ],
)
def test_non_finite_values_name_the_benchmark(text: str, where: str) -> None:
    message = failure(text)
    assert f"pytest-benchmark: benchmarks[0].{where} is not a finite number" in message
    assert "'a'" in message


def test_a_real_pytest_benchmark_run_imports(tmp_path: Path) -> None:
    bench_file = tmp_path / "test_sample_bench.py"
    bench_file.write_text(
        textwrap.dedent(
            """
            import pytest


            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)


            def test_fib(benchmark):
                assert benchmark(fib, 10) == 55


            @pytest.mark.parametrize("n", [5, 8])
            def test_fib_param(benchmark, n):
                benchmark(fib, n)


            @pytest.mark.benchmark(group="sums")
            def test_sum(benchmark):
                benchmark(sum, range(10))
            """
        )
    )
    out = tmp_path / "out.json"
    # cwd and --rootdir in tmp_path keep this repository's pytest configuration out of the run.
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(bench_file),
            "--benchmark-json",
            str(out),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--benchmark-max-time=0.05",
            "--benchmark-min-rounds=3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    parsed = parse_results(out.read_bytes(), version="9.9.9")
    assert parsed.format == "pytest-benchmark"
    rows = by_name(parsed)
    tests = [
        "test_sample_bench.py::test_fib",
        "test_sample_bench.py::test_fib_param[5]",
        "test_sample_bench.py::test_fib_param[8]",
        "test_sample_bench.py::test_sum",
    ]
    assert sorted(rows) == sorted(f"{test}.{stat}" for test in tests for stat in STATS)
    for test in tests:
        mean = rows[f"{test}.mean"]
        ops = rows[f"{test}.ops"]
        assert mean.unit == "s"
        assert ops.unit == "ops/s"
        assert 0 < rows[f"{test}.min"].value <= mean.value <= rows[f"{test}.max"].value
        assert ops.value == pytest.approx(1 / mean.value, rel=1e-9)
    tags = rows["test_sample_bench.py::test_fib_param[8].mean"].tags
    for key in ("machine.node", "machine.system", "machine.machine", "python"):
        assert tags[key], key
    assert tags["python"].startswith(("CPython ", "PyPy "))
    assert tags["param.n"] == "8"
    assert tags["version"] == "9.9.9"
    # tmp_path is no git checkout: pytest-benchmark's "unversioned" is not a commit.
    assert "commit" not in tags
    assert rows["test_sample_bench.py::test_sum.mean"].tags["group"] == "sums"
    stamp = parsed.results[0].timestamp
    assert stamp is not None
    assert stamp.tzinfo is UTC
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 600


# --- k6 -----------------------------------------------------------------------------------


def test_k6_legacy_summary_with_a_failed_threshold() -> None:
    parsed = parse_results(K6_SWEET.read_bytes())
    rows = by_name(parsed)

    assert parsed.format == "k6"
    assert {name: (row.value, row.unit) for name, row in rows.items()} == {
        "http_req_duration.avg": (56.851944971388264, "ms"),
        "http_req_duration.p90": (163.6795025, "ms"),
        "http_req_duration.p95": (269.06783674999986, "ms"),
        "http_req_duration.med": (10.263748, "ms"),
        "http_reqs.rate": (8621.047451099874, "req/s"),
        "http_reqs.count": (388556.0, "count"),
        "iterations.count": (388556.0, "count"),
        "iterations.rate": (8621.047451099874, "iterations/s"),
        "checks.pass_rate": (100.0, "%"),
        # k6's value, the failed fraction: in legacy files "passes" counts failed requests.
        "http_req_failed.rate": (100 * 0.21745900204861077, "%"),
        # {"p(95)<50": true} in a legacy file means the threshold FAILED (p95 was 269 ms).
        "k6.threshold.http_req_duration.p(95)<50": (0.0, "pass"),
    }
    assert all(row.timestamp is None for row in parsed.results)
    assert all(row.tags == {} for row in parsed.results)


def test_k6_legacy_summary_without_thresholds() -> None:
    parsed = parse_results(K6_RAGHAV.read_bytes(), commit_sha="45ea286")
    rows = by_name(parsed)

    assert len(rows) == 10
    assert rows["checks.pass_rate"].value == 100.0
    assert rows["http_reqs.rate"].value == 93.24447640209767
    assert rows["http_reqs.count"].value == 2890
    assert rows["iterations.rate"].value == 93.24447640209767
    assert rows["http_req_duration.p95"].value == 234.2639749999996
    assert rows["http_req_duration.med"].value == 8.747150000000001
    assert rows["http_req_failed.rate"].value == 0.0
    assert not any(name.startswith("k6.threshold.") for name in rows)
    assert {row.tags["commit"] for row in parsed.results} == {"45ea286"}


def test_k6_legacy_false_threshold_passed() -> None:
    document = json.loads(K6_SWEET.read_bytes())
    document["metrics"]["http_req_duration"]["thresholds"] = {"p(95)<500": False}
    rows = by_name(parse_results(as_bytes(document)))
    assert rows["k6.threshold.http_req_duration.p(95)<500"].value == 1.0


def test_k6_handle_summary_format_reads_values_and_ok_thresholds() -> None:
    document = {
        "root_group": {"name": "", "path": "", "groups": [], "checks": []},
        "options": {"summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)"]},
        "state": {"isStdOutTTY": False, "isStdErrTTY": False, "testRunDurationMs": 10051.2},
        "metrics": {
            "http_req_duration": {
                "type": "trend",
                "contains": "time",
                "values": {
                    "avg": 140.36,
                    "min": 119.08,
                    "med": 140.96,
                    "max": 154.63,
                    "p(90)": 146.88,
                    "p(95)": 148.21,
                },
                "thresholds": {"p(95)<1500": {"ok": True}, "p(90)<100": {"ok": False}},
            },
            "http_req_failed": {
                "type": "rate",
                "contains": "default",
                "values": {"rate": 0.04, "passes": 2, "fails": 48},
                "thresholds": {"rate<0.01": {"ok": False}},
            },
            "http_reqs": {
                "type": "counter",
                "contains": "default",
                "values": {"count": 50, "rate": 4.97},
            },
            "iterations": {
                "type": "counter",
                "contains": "default",
                "values": {"count": 25, "rate": 2.48},
            },
            "checks": {
                "type": "rate",
                "contains": "default",
                "values": {"rate": 0.9, "passes": 90, "fails": 10},
            },
            "vus": {
                "type": "gauge",
                "contains": "default",
                "values": {"value": 1, "min": 1, "max": 1},
            },
        },
    }
    rows = by_name(parse_results(as_bytes(document)))
    assert {name: (row.value, row.unit) for name, row in rows.items()} == {
        "http_req_duration.avg": (140.36, "ms"),
        "http_req_duration.p90": (146.88, "ms"),
        "http_req_duration.p95": (148.21, "ms"),
        "http_req_duration.med": (140.96, "ms"),
        "http_reqs.rate": (4.97, "req/s"),
        "http_reqs.count": (50.0, "count"),
        "iterations.count": (25.0, "count"),
        "iterations.rate": (2.48, "iterations/s"),
        "checks.pass_rate": (90.0, "%"),
        "http_req_failed.rate": (4.0, "%"),
        "k6.threshold.http_req_duration.p(95)<1500": (1.0, "pass"),
        "k6.threshold.http_req_duration.p(90)<100": (0.0, "pass"),
        "k6.threshold.http_req_failed.rate<0.01": (0.0, "pass"),
    }


def test_k6_rates_fall_back_to_what_the_file_has() -> None:
    only_value = {
        "metrics": {"checks": {"value": 0.25}, "http_req_failed": {"passes": 1, "fails": 3}}
    }
    rows = by_name(parse_results(as_bytes(only_value)))
    assert rows["checks.pass_rate"].value == 25.0
    assert rows["http_req_failed.rate"].value == 25.0
    # No counts and no fraction: nothing to report rather than a guess.
    empty = {"metrics": {"checks": {"passes": 0, "fails": 0}, "http_reqs": {"count": 0}}}
    assert list(by_name(parse_results(as_bytes(empty)))) == ["http_reqs.count"]


def test_k6_thresholds_of_custom_and_tagged_metrics_are_rows_too() -> None:
    document = {
        "metrics": {
            "auth_limited_429": {
                "passes": 1,
                "fails": 0,
                "value": 1,
                "thresholds": {"rate>0.5": False},
            },
            "http_req_duration{expected_response:true}": {
                "avg": 1,
                "thresholds": {"p(99)<10": True},
            },
        }
    }
    rows = by_name(parse_results(as_bytes(document)))
    assert rows["k6.threshold.auth_limited_429.rate>0.5"].value == 1.0
    assert rows["k6.threshold.http_req_duration{expected_response:true}.p(99)<10"].value == 0.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"root_group": {}}, "k6 summary: no metrics object"),
        ({"metrics": []}, "k6 summary: metrics is not an object"),
        ({"metrics": {"http_reqs": 5}}, "k6 summary: metrics.'http_reqs' is not an object"),
        ({"metrics": {"http_reqs": {"values": [1]}}}, "metrics.http_reqs.values is not an object"),
        (
            {"metrics": {"http_reqs": {"rate": "fast"}}},
            "k6 summary: http_reqs rate is not a number",
        ),
        ({"metrics": {"checks": {"passes": "x", "fails": 1}}}, "checks passes is not a number"),
        ({"metrics": {"vus": {"value": 3}, "data_sent": {"count": 1}}}, "no results in the file"),
        ({"metrics": {"vus": {"thresholds": ["p(95)<1"]}}}, "'vus'.thresholds is not an object"),
        (
            {"metrics": {"vus": {"thresholds": {"value<5": "yes"}}}},
            "threshold 'value<5' of 'vus' is neither true/false",
        ),
        ({"metrics": {"vus": {"thresholds": {"value<5": {"ok": 1}}}}}, "is neither true/false"),
        ({"metrics": {"http_reqs": {"rate": 1e999}}}, "http_reqs.rate is not a finite number"),
        ({"metrics": {"checks": {"value": -1e308, "passes": None}}}, "checks.pass_rate is not a"),
    ],
)
def test_bad_k6_summaries_say_what_is_wrong(document: object, message: str) -> None:
    assert message in failure(as_bytes(document))


# --- CSV ----------------------------------------------------------------------------------


def test_csv_rows_with_tags() -> None:
    text = (
        "\ufeffname,value,unit,tags\r\n"
        "\r\n"
        "api.latency.p95,12.5,ms,region=eu,host = web-1 \r\n"
        '"checkout, end to end",3,s,"note=a,b=c"\r\n'
        "build.size,1e6,bytes,\r\n"
        "\r\n"
    )
    parsed = parse_results(text.encode(), version="2.0.0")
    assert parsed.format == "csv"
    assert parsed.results == [
        ParsedResult(
            name="api.latency.p95",
            value=12.5,
            unit="ms",
            tags={"region": "eu", "host": "web-1", "version": "2.0.0"},
            timestamp=None,
        ),
        ParsedResult(
            name="checkout, end to end",
            value=3.0,
            unit="s",
            tags={"note": "a,b=c", "version": "2.0.0"},
            timestamp=None,
        ),
        ParsedResult(
            name="build.size", value=1e6, unit="bytes", tags={"version": "2.0.0"}, timestamp=None
        ),
    ]


def test_csv_commit_argument_overrides_a_commit_tag_and_long_values_are_cut() -> None:
    text = f"name,value,unit\nm,1,s,commit=fromfile,long={'x' * 500}\n"
    row = parse_results(text.encode(), commit_sha="deadbeef").results[0]
    assert row.tags == {"commit": "deadbeef", "long": "x" * MAX_TAG_VALUE_LENGTH}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,value,unit\nm,1,s\nm2,abc,s\n", "CSV line 3: value 'abc' is not a number"),
        ("name,value,unit\n\nm,1,s,fast\n", "CSV line 3: extra cell 'fast' is not a tag key=value"),
        ("name,value,unit\nm,1,s,=v\n", "CSV line 2: tag '=v' has an empty key"),
        ("name,value,unit\nm,1,s," + "k" * 65 + "=v\n", "CSV line 2: tag key 'kkk"),
        ("name,value,unit\nm,nan,s\n", "CSV line 2: value 'nan' is not a finite number"),
        ("name,value,unit\nm,-inf,s\n", "CSV line 2: value '-inf' is not a finite number"),
        ("name,value,unit\nm,1\n", "CSV line 2: expected name,value,unit, found 2 cell(s)"),
        ("name,value,unit\n ,1,s\n", "CSV line 2: the name is empty"),
        ("name,value,unit\n" + "n" * 201 + ",1,s\n", "CSV line 2: the name is longer than 200"),
        ("name,value,unit\nm,1, \n", "CSV line 2: the unit is empty"),
        ("name,value,unit\nm,1," + "u" * 33 + "\n", "CSV line 2: the unit is longer than 32"),
        ("name,value,unit\nm\x00,1,s\n", "CSV line 2: 'm\\x00' contains a NUL character"),
        ("name,value,unit\n", "no results in the file"),
        ("name,value,unit\nm,1,s,k=" + "v" * 200_000 + "\n", "CSV line 2: field larger than"),
        ("name,unit,value\nm,s,1\n", "not JSON, and not CSV with a header name,value,unit"),
        ("m,1,s\n", "not JSON, and not CSV with a header name,value,unit"),
        ("hello", "not JSON, and not CSV with a header name,value,unit"),
    ],
)
def test_bad_csv_says_what_is_wrong(text: str, message: str) -> None:
    assert message in failure(text)


def test_the_result_cap_is_exact() -> None:
    rows = "".join(f"m{i},{i},s\n" for i in range(MAX_RESULTS))
    assert len(parse_results(f"name,value,unit\n{rows}".encode()).results) == MAX_RESULTS
    over = f"name,value,unit\n{rows}one.more,1,s\n"
    assert failure(over) == f"more than {MAX_RESULTS} results in the file"


# --- any input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b" \n\t\n", "the file is empty"),
        (b"\xff\xfe{", "not valid UTF-8"),
        (b"{", "not valid JSON: Expecting property name"),
        (b'{"benchmarks": [1,]}', "not valid JSON"),
        (b"[1, 2]", "JSON, but not an object"),
        (b"null", "JSON, but not an object"),
        (b'{"results": []}', "JSON, but neither pytest-benchmark"),
        (b"[" * 100_000, "JSON nested too deeply"),
        (b'{"benchmarks": ' + b"[" * 100_000, "JSON nested too deeply"),
    ],
)
def test_unreadable_files_say_what_is_wrong(data: bytes, message: str) -> None:
    assert message in failure(data)


def _check(parsed: ParsedResults) -> None:
    assert parsed.format in {"pytest-benchmark", "k6", "csv"}
    assert 0 < len(parsed.results) <= MAX_RESULTS
    for row in parsed.results:
        assert math.isfinite(row.value)
        assert row.name
        assert row.unit
        assert row.timestamp is None or row.timestamp.tzinfo is UTC
        for key, value in row.tags.items():
            assert isinstance(key, str)
            assert isinstance(value, str)
            assert len(key) <= MAX_TAG_KEY_LENGTH
            assert len(value) <= MAX_TAG_VALUE_LENGTH


def _parse_any(data: bytes) -> None:
    """Anything but ImportFailed propagates and fails the test."""
    try:
        parsed = parse_results(data, version="1.0", commit_sha="abc")
    except ImportFailed as exc:
        message = str(exc)
    else:
        _check(parsed)
        return
    assert message, "an ImportFailed must say what is wrong"


@given(st.binary(max_size=2000))
@settings(max_examples=500, deadline=None)
def test_any_bytes_parse_or_fail_with_import_failed(data: bytes) -> None:
    _parse_any(data)


# Keys the parsers look for, so that random structures reach deep into them.
KEYS = st.sampled_from(
    [
        "name", "fullname", "stats", "mean", "median", "stddev", "min", "max", "ops", "data",
        "group", "param", "params", "machine_info", "commit_info", "cpu", "brand", "brand_raw",
        "node", "system", "machine", "python_implementation", "python_version", "id", "branch",
        "datetime", "values", "thresholds", "ok", "passes", "fails", "value", "rate", "count",
        "avg", "med", "p(90)", "p(95)", "http_req_duration", "http_reqs", "http_req_failed",
        "checks", "iterations", "type", "contains",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=12)
    | st.datetimes().map(datetime.isoformat)
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=40,
)


@given(JSONISH, JSONISH, JSONISH, JSONISH)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_structures_under_benchmarks(
    benchmarks: object, machine: object, commit: object, when: object
) -> None:
    document = {
        "benchmarks": benchmarks,
        "machine_info": machine,
        "commit_info": commit,
        "datetime": when,
    }
    _parse_any(json.dumps(document).encode())


@given(JSONISH)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_structures_under_metrics(metrics: object) -> None:
    _parse_any(json.dumps({"metrics": metrics}).encode())


NUMBERISH = st.one_of(st.floats(), st.integers(), st.none(), st.text(max_size=4), st.booleans())
BENCHMARK = st.fixed_dictionaries(
    {
        "name": st.text(max_size=30),
        "stats": st.dictionaries(
            st.sampled_from(["mean", "median", "stddev", "min", "max", "ops", "data"]), NUMBERISH
        ),
    },
    optional={
        "fullname": st.text(max_size=30),
        "group": JSONISH,
        "params": JSONISH,
        "param": JSONISH,
    },
)
METRIC = st.dictionaries(
    st.sampled_from(["avg", "med", "p(90)", "p(95)", "count", "rate", "passes", "fails", "value"]),
    NUMBERISH,
).flatmap(
    lambda stats: st.sampled_from(
        [
            stats,
            {"type": "trend", "values": stats},
            {**stats, "thresholds": {"p(95)<1": True}},
            {"values": stats, "thresholds": {"rate<1": {"ok": False}}},
        ]
    )
)


@given(st.lists(BENCHMARK, max_size=4), JSONISH)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_benchmark_shaped_structures(benchmarks: list[object], machine: object) -> None:
    document = {"benchmarks": benchmarks, "machine_info": {"cpu": machine, "node": machine}}
    _parse_any(json.dumps(document).encode())


@given(
    st.dictionaries(
        st.sampled_from(
            ["http_req_duration", "http_reqs", "http_req_failed", "checks", "iterations", "custom"]
        ),
        METRIC,
    )
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_k6_shaped_structures(metrics: dict[str, object]) -> None:
    _parse_any(json.dumps({"metrics": metrics}).encode())


@given(
    st.lists(
        st.lists(st.text(alphabet=st.characters(), max_size=8), max_size=6), min_size=1, max_size=6
    )
)
@settings(max_examples=300, deadline=None)
def test_csv_shaped_text(rows: list[list[str]]) -> None:
    body = "\n".join(",".join(cells) for cells in rows)
    _parse_any(f"name,value,unit\n{body}".encode("utf-8", "surrogatepass"))
