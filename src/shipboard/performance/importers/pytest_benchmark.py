"""pytest-benchmark JSON (``pytest --benchmark-json`` or ``--benchmark-autosave``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from shipboard.performance.importers.common import (
    MAX_TAG_KEY_LENGTH,
    Collector,
    ImportFailed,
    as_number,
    clip,
    plain_text,
    quote,
    tag_text,
)

_PB = "pytest-benchmark"
_PB_SECONDS_STATS: Final = ("mean", "median", "stddev", "min", "max")


def parse(document: dict[str, object], out: Collector) -> None:
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
        where = f"{path} ({quote(base)})"
        stats = bench.get("stats")
        if not isinstance(stats, dict):
            raise ImportFailed(f"{path}.stats is missing or not an object ({quote(base)})")
        if "mean" not in stats:
            raise ImportFailed(f"{path}.stats.mean is missing ({quote(base)})")
        tags = {**run_tags, **_pb_bench_tags(bench, where)}
        values: dict[str, float] = {}
        for stat in (*_PB_SECONDS_STATS, "ops"):
            raw = stats.get(stat)
            number = as_number(raw)
            if number is None:
                # null is what pytest-benchmark writes for a statistic it could not compute.
                if stat == "mean" or raw is not None:
                    raise ImportFailed(f"{path}.stats.{stat} is not a number ({quote(base)})")
                continue
            if not math.isfinite(number):
                raise ImportFailed(
                    f"{path}.stats.{stat} is not a finite number ({number}) ({quote(base)})"
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
        tags["group"] = tag_text(group, where)
    params = bench.get("params")
    if isinstance(params, dict) and params:
        for key, value in params.items():
            tags[f"param.{key}"[:MAX_TAG_KEY_LENGTH]] = tag_text(value, where)
    else:
        param = bench.get("param")
        if param is not None:
            tags["param"] = tag_text(param, where)
    return tags


def _pb_run_tags(document: dict[str, object]) -> dict[str, str]:
    # Machine and commit details only label the rows: a damaged one is dropped, not fatal.
    tags: dict[str, str] = {}
    machine = document.get("machine_info")
    if isinstance(machine, dict):
        for key in ("node", "system", "machine"):
            text = plain_text(machine.get(key))
            if text:
                tags[f"machine.{key}"] = text
        cpu = machine.get("cpu")
        if isinstance(cpu, dict):
            # py-cpuinfo renamed "brand" to "brand_raw" in version 7.
            brand = plain_text(cpu.get("brand")) or plain_text(cpu.get("brand_raw"))
            if brand:
                tags["machine.cpu"] = brand
        python = " ".join(
            part
            for part in (
                plain_text(machine.get("python_implementation")),
                plain_text(machine.get("python_version")),
            )
            if part
        )
        if python:
            tags["python"] = clip(python)
    commit = document.get("commit_info")
    if isinstance(commit, dict):
        # Outside a repository pytest-benchmark writes placeholders, which would pose as a
        # commit and a branch.
        commit_id = plain_text(commit.get("id"))
        if commit_id and commit_id != "unversioned":
            tags["commit"] = commit_id
        branch = plain_text(commit.get("branch"))
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
        raise ImportFailed(f"{_PB}: datetime {quote(raw)} is not an ISO 8601 time") from None
