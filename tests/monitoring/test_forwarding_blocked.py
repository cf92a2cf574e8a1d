"""A store that refuses Shipboard itself (wrong credentials, URL or tenant: 401, 403, 404, 407)
blocks the remote-write queue instead of emptying it: the batches stay, /metrics says so, the
log names the status and never a credential, and once the setting is fixed every point arrives
(issue 23, docs/monitoring.md Forwarding)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from structlog.testing import capture_logs

from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.monitoring.forwarding import Forwarder, queue_status
from tests.support.live import LiveServer, Receiver, VictoriaMetrics, wait_for

WRONG = "wrong-password-4f1e"


def _points(count: int, *, name: str) -> list[dict[str, Any]]:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    return [
        {
            "name": name,
            "value": i * 1.25,
            "environment": "production",
            "source": "rest",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
        }
        for i in range(count)
    ]


def _push(live: LiveServer, token: str, points: list[dict[str, Any]]) -> None:
    answer = httpx.post(
        f"{live.base_url}/api/v1/metrics",
        json={"metrics": points},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.json() == {"accepted": len(points)}


def _exposed(live: LiveServer, token: str) -> str:
    answer = httpx.get(
        f"{live.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    answer.raise_for_status()
    return answer.text


def _queued(engine: Engine) -> int:
    with system_transaction(engine) as session:
        return queue_status(session).points


def test_wrong_credentials_keep_the_queue_and_right_ones_deliver_every_point(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics_auth: VictoriaMetrics,
) -> None:
    store = victoria_metrics_auth
    live = serve(
        remote_write_url=f"{store.url}/api/v1/write",
        remote_write_username="shipboard",
        remote_write_password=WRONG,
    )
    collector, admin = make_user("collector", "service"), make_user("operator", "admin")
    first, second = _points(3, name="blocked.first"), _points(4, name="blocked.second")
    _push(live, collector, first)
    _push(live, collector, second)

    wrong = Forwarder(live.app.state.forwarding)
    with capture_logs() as logs:
        refused = wrong.forward_once(engine)
        # After its backoff the oldest is tried again, refused again, and still kept.
        again = wait_for(lambda: wrong.forward_once(engine).blocked_status, timeout=10)
    wrong.close()
    assert (refused.blocked_status, refused.sent_points, refused.dropped_points) == (401, 0, 0)
    assert again == 401
    assert _queued(engine) == 7
    blocked = [e for e in logs if e["log_level"] == "error"]
    assert blocked
    assert all(e["status"] == 401 for e in blocked)
    assert "SHIPBOARD_REMOTE_WRITE_USERNAME" in blocked[0]["fix"]
    assert WRONG not in repr(logs)
    exposed = _exposed(live, admin)
    assert "shipboard_remote_write_blocked 1.0" in exposed
    assert "shipboard_remote_write_last_error_status 401.0" in exposed
    assert "shipboard_remote_write_dropped_points_last_hour 0.0" in exposed
    assert "shipboard_remote_write_queue_points 7.0" in exposed

    # The operator fixes the password and restarts: the next forwarder has the right one, and
    # tries the blocked queue at once rather than after the backoff the wrong one earned.
    fixed = Forwarder(dataclasses.replace(live.app.state.forwarding, password="right"))
    first_round = fixed.forward_once(engine)
    fixed.close()
    assert (first_round.sent_points, first_round.retrying) == (7, False)
    assert _queued(engine) == 0
    exposed = _exposed(live, admin)
    assert "shipboard_remote_write_blocked 0.0" in exposed
    assert "shipboard_remote_write_last_error_status 0.0" in exposed

    store.flush()
    for name, points in (("blocked_first", first), ("blocked_second", second)):
        answer = httpx.get(
            f"{store.url}/api/v1/query",
            params={"query": f'{name}{{environment="production"}}[10m]'},
            auth=store.auth,
            timeout=10,
        ).json()
        (series,) = answer["data"]["result"]
        expected = [
            (int(datetime.fromisoformat(p["timestamp"]).timestamp() * 1000), p["value"])
            for p in points
        ]
        assert [(round(float(t) * 1000), float(v)) for t, v in series["values"]] == expected


def test_a_wrong_path_on_victoria_metrics_blocks_rather_than_drops(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
) -> None:
    # Single-node VictoriaMetrics answers an unknown path with 400, the status of bad data.
    live = serve(remote_write_url=f"{victoria_metrics.url}/api/v1/wirte")
    _push(live, make_user("collector", "service"), _points(2, name="typo"))
    forwarder = Forwarder(live.app.state.forwarding)
    result = forwarder.forward_once(engine)
    forwarder.close()
    assert (result.blocked_status, result.dropped_points) == (400, 0)
    assert _queued(engine) == 2
    exposed = _exposed(live, make_user("operator", "admin"))
    assert "shipboard_remote_write_blocked 1.0" in exposed


@pytest.mark.parametrize("status", [403, 404, 407])
def test_refusals_of_shipboard_itself_block_and_bad_data_still_drops(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    status: int,
) -> None:
    # The scripted store at the edge: a tenant refused, a wrong path, a proxy wanting
    # credentials; then, once through, a batch the store refuses as bad data (413).
    store = Receiver(statuses=[status, 413, 204])
    live = serve(remote_write_url=store.url)
    collector = make_user("collector", "service")
    _push(live, collector, _points(2, name="kept"))
    _push(live, collector, _points(3, name="next"))
    forwarder = Forwarder(live.app.state.forwarding)
    blocked = forwarder.forward_once(engine)
    assert (blocked.blocked_status, blocked.dropped_points) == (status, 0)
    assert _queued(engine) == 5
    exposed = _exposed(live, make_user("operator", "admin"))
    assert "shipboard_remote_write_blocked 1.0" in exposed
    assert f"shipboard_remote_write_last_error_status {status}.0" in exposed

    result = wait_for(lambda: (r := forwarder.forward_once(engine)).dropped_points and r)
    forwarder.close()
    assert (result.dropped_points, result.sent_points, result.blocked_status) == (2, 3, None)
    assert _queued(engine) == 0
