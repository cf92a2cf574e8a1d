"""`shipboard metrics push|query` and `shipboard report monitoring` against a live server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.support.cli import shipboard_as
from tests.support.live import Clients


def test_push_query_and_report(clients: Clients) -> None:
    now = datetime.now(UTC)
    lines = "\n".join(
        json.dumps(
            {
                "name": "cpu",
                "value": v,
                "timestamp": (now - timedelta(minutes=10 - i)).isoformat(),
                "tags": {"host": "a"},
            }
        )
        for i, v in enumerate([1, 2, 3, 4, 5, 6, 7, 8])
    )
    pushed = shipboard_as(
        clients, "service", "metrics", "push", "--env", "staging", stdin=lines + "\n"
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "accepted 8 point(s)" in pushed.stdout
    query = shipboard_as(
        clients,
        "viewer",
        "metrics",
        "query",
        "cpu",
        "--env",
        "staging",
        "--step",
        "60",
        "--tag",
        "host=a",
        "--json",
    )
    assert query.returncode == 0, query.stderr
    assert [v for _, v in json.loads(query.stdout)["points"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    pretty = shipboard_as(
        clients, "viewer", "metrics", "query", "cpu", "--env", "staging", "--step", "60"
    )
    assert "▁" in pretty.stdout
    assert "█" in pretty.stdout
    assert "from Shipboard's database" in pretty.stdout
    no_store = shipboard_as(
        clients, "viewer", "metrics", "query", "cpu", "--env", "staging", "--source", "store"
    )
    assert no_store.returncode != 0
    assert "SHIPBOARD_PROMETHEUS_URL" in no_store.stderr
    report = shipboard_as(clients, "viewer", "report", "monitoring", "--env", "staging", "--json")
    assert json.loads(report.stdout)["metrics"][0]["name"] == "cpu"
    bad = shipboard_as(
        clients, "service", "metrics", "push", "--env", "staging", stdin="{not json\n"
    )
    assert bad.returncode == 2  # usage: the input is wrong, nothing was sent
    assert "line 1 is not JSON" in bad.stderr
    refused = shipboard_as(clients, "viewer", "metrics", "push", "--env", "staging", stdin=lines)
    assert refused.returncode == 3  # a 403
    assert "403" in refused.stderr
