"""Checking a PromQL query on write (core/promql.py), directly: what may be named, and every
parser failure — a Rust panic included — as the same ValueError (a 422 where it is written)."""

from __future__ import annotations

import pytest

from shipboard.core.promql import check_query


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
