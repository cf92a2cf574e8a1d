"""The time-series store figures (issue 23), against a real VictoriaMetrics started for each:
ingest through Shipboard into the store by remote write, a 24-hour series read through
Shipboard, and what a PromQL check adds to a deployment's verification.

Each baseline is the store doing the same work with Shipboard out of the way: the same points
remote-written to it by the same client, the same ``query_range``, the same instant query.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from bench.support import (
    VictoriaMetrics,
    live_instance,
    server_process,
    victoria_metrics,
    victoria_metrics_binary,
    victoria_metrics_version,
)
from shipboard.monitoring import remote_write as rw

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shipboard.core.promql import PromStore

BATCH = 10_000
CLIENTS = 4
METRIC = "http_request_duration_ms"


def _skipped(name: str, backend: str, unit: str, target: str) -> list[dict[str, Any]] | None:
    """The row that says the figure was not measured, when there is no VictoriaMetrics."""
    if victoria_metrics_binary() is not None:
        return None
    return [
        {
            "name": f"{name}: skipped",
            "backend": backend,
            "value": "-",
            "unit": unit,
            "baseline": None,
            "ratio": None,
            "target": target,
            "note": "victoria-metrics is not installed (Debian package victoria-metrics)",
        }
    ]


def _batches(requests: int) -> list[list[dict[str, Any]]]:
    """``requests`` batches of ``BATCH`` points shaped like ``bench.support.metric_points``
    (one name, 20 routes), every point at a timestamp of its own so the store keeps each one
    and the count that ends the figure is exact."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    return [
        [
            {
                "name": METRIC,
                "value": float(i % 997),
                "timestamp": (t0 + timedelta(milliseconds=b * BATCH + i)).isoformat(),
                "environment": "production",
                "tags": {"route": f"/r/{i % 20}", "method": "GET"},
                "source": "application",
            }
            for i in range(BATCH)
        ]
        for b in range(requests)
    ]


def remote_write_body(points: Sequence[dict[str, Any]]) -> bytes:
    """The points as one ``WriteRequest``, grouped into series as Shipboard's forwarder groups
    them (``monitoring/forwarding.py``), encoded by Shipboard's own encoder."""
    grouped: dict[tuple[Any, ...], list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        key = (p["name"], p["environment"], p["source"], tuple(sorted(p["tags"].items())))
        stamp = datetime.fromisoformat(p["timestamp"])
        grouped[key].append((int(stamp.timestamp() * 1000), float(p["value"])))
    series = [
        rw.series_for(name=name, environment=env, source=source, tags=dict(tags), samples=samples)[
            0
        ]
        for (name, env, source, tags), samples in grouped.items()
    ]
    return rw.encode(series)


def _post_all(url: str, bodies: list[bytes], headers: dict[str, str]) -> None:
    """The client both sides use: ``CLIENTS`` threads, each with a connection of its own,
    sending its share of ``bodies`` back to back; any answer that is not a 2xx fails the
    figure."""
    failures: list[str] = []

    def client(share: list[bytes]) -> None:
        with httpx.Client(headers=headers, timeout=300) as http:
            for body in share:
                answer = http.post(url, content=body)
                if not answer.is_success:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
                    return

    threads = [threading.Thread(target=client, args=(bodies[k::CLIENTS],)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")


def _until_stored(store: VictoriaMetrics, expected: int, *, timeout: float = 600) -> None:
    """Poll the store (flushed first, so a point it holds is a point it answers) until it
    counts ``expected`` samples of the figure's metric."""
    deadline = time.monotonic() + timeout
    counted = 0.0
    while time.monotonic() < deadline:
        store.flush()
        counted = store.scalar(f"sum(count_over_time({METRIC}[2h]))")
        if counted >= expected:
            if counted > expected:
                raise RuntimeError(f"the store counts {counted:.0f} samples, {expected} were sent")
            return
        time.sleep(0.05)
    raise RuntimeError(f"the store had {counted:.0f} of {expected} samples after {timeout:.0f} s")


def _timed_ingest(
    store: VictoriaMetrics, send: Callable[[], None], expected: int
) -> tuple[float, float]:
    """Points/s from the first request sent until the store answers for every point, and the
    seconds until the last request was answered."""
    started = time.perf_counter()
    send()
    acked = time.perf_counter()
    _until_stored(store, expected)
    ended = time.perf_counter()
    return expected / (ended - started), acked - started


def bench_store_ingest(
    url: str, backend: str, requests_per_client: int, *, unforwarded: bool = True
) -> list[dict[str, Any]]:
    """``POST /api/v1/metrics`` batches of 10,000 points from 4 clients to ``shipboard serve``
    (with its scheduler, so its forwarder) whose SHIPBOARD_REMOTE_WRITE_URL is a fresh
    VictoriaMetrics, timed until VictoriaMetrics answers for every point; against the same points
    remote-written straight to another fresh VictoriaMetrics by the same client. Beside it, with
    ``unforwarded``: the same requests to a server that does not forward (points/s until
    answered)."""
    name = "ingest into VictoriaMetrics via Shipboard"
    target = ">= 0.8"
    if skipped := _skipped(name, backend, "points/s", target):
        return skipped
    batches = _batches(CLIENTS * requests_per_client)
    expected = len(batches) * BATCH
    json_bodies = [orjson.dumps({"metrics": batch}) for batch in batches]
    write_bodies = [remote_write_body(batch) for batch in batches]

    with victoria_metrics() as store:
        direct, direct_acked = _timed_ingest(
            store,
            lambda: _post_all(
                f"{store.url}/api/v1/write",
                write_bodies,
                {
                    "Content-Type": rw.CONTENT_TYPE,
                    "Content-Encoding": rw.CONTENT_ENCODING,
                    "X-Prometheus-Remote-Write-Version": rw.PROTOCOL_VERSION,
                },
            ),
            expected,
        )

    with (
        victoria_metrics() as store,
        server_process(
            url,
            worker=True,
            env={"SHIPBOARD_REMOTE_WRITE_URL": f"{store.url}/api/v1/write"},
        ) as (_pid, token, base_url),
    ):
        through, through_acked = _timed_ingest(
            store,
            lambda: _post_all(
                f"{base_url}/api/v1/metrics",
                json_bodies,
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ),
            expected,
        )
    row: dict[str, Any] = {
        "name": f"{name} ({expected:,} points)",
        "backend": backend,
        "value": round(through),
        "unit": "points/s",
        "baseline": round(direct),
        "ratio": round(through / direct, 3),
        "target": target,
        "acked_s": round(through_acked, 2),
        "baseline_acked_s": round(direct_acked, 2),
        "store": victoria_metrics_version(),
    }
    if unforwarded:
        # Where the time goes: the same requests to a server that does not forward (same
        # database, now holding the points once already), timed until the last is answered.
        with server_process(url, worker=True) as (_pid, token, base_url):
            started = time.perf_counter()
            _post_all(
                f"{base_url}/api/v1/metrics",
                json_bodies,
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            row["unforwarded"] = round(expected / (time.perf_counter() - started))
    return [row]


# --- a 24-hour series through Shipboard ------------------------------------------------------


def bench_store_series(url: str, backend: str, names: int, runs: int = 20) -> list[dict[str, Any]]:
    """``GET /api/v1/metrics/series`` (24 h, 1-minute steps, avg, one metric and environment)
    from ``shipboard serve`` whose SHIPBOARD_PROMETHEUS_URL is a VictoriaMetrics holding 24 h of
    a point a minute for ``names`` names x 3 environments; against ``GET /api/v1/query_range``
    of the same series straight to VictoriaMetrics. Medians of ``runs``; the ratio is the store's
    time over Shipboard's (a speed ratio). Beside it, ``route_empty_ms``: the same request with
    ``source=embedded``, answered from an empty table (the route's cost without the store)."""
    name = "series 24h/1min via Shipboard vs the store"
    target = ">= 0.5 (store ms / Shipboard ms)"
    if skipped := _skipped(name, backend, "ms (median)", target):
        return skipped
    until = datetime.now(UTC).replace(second=0, microsecond=0)
    since = until - timedelta(hours=24)
    minutes = 24 * 60
    chosen = f"metric_{names // 2}"

    with victoria_metrics() as store:
        for metric in range(names):
            series = [
                rw.series_for(
                    name=f"metric_{metric}",
                    environment=env,
                    source="app",
                    tags={},
                    samples=[
                        (int((since + timedelta(minutes=k)).timestamp() * 1000), float(k % 100))
                        for k in range(minutes + 1)
                    ],
                )[0]
                for env in ("development", "staging", "production")
            ]
            store.write(rw.encode(series))
        store.flush()

        # The query_range the series API sends for 1-minute avg buckets over [since, until)
        # (monitoring/store_series.py): bucket k evaluated at since + (k+1) min over the minute
        # before it, exact across series (sum of sums over sum of counts).
        window = f'{chosen}{{environment="production"}}[60s] offset 1ms'
        range_params = {
            "query": f"sum(sum_over_time({window})) / sum(count_over_time({window}))",
            "start": f"{(since + timedelta(minutes=1)).timestamp():.0f}",
            "end": f"{until.timestamp():.0f}",
            "step": "60",
        }
        direct_points = 0

        def direct() -> None:
            nonlocal direct_points
            answer = store.client.get("/api/v1/query_range", params=range_params)
            answer.raise_for_status()
            result = answer.json()["data"]["result"]
            direct_points = len(result[0]["values"]) if result else 0

        with (
            server_process(url, env={"SHIPBOARD_PROMETHEUS_URL": store.url}) as (
                _pid,
                token,
                base_url,
            ),
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client,
        ):
            series_params = {
                "name": chosen,
                "environment": "production",
                "since": since.isoformat(),
                "until": until.isoformat(),
                "step": "60",
                "agg": "avg",
            }
            through_points, source = 0, None

            def through() -> None:
                nonlocal through_points, source
                answer = client.get("/api/v1/metrics/series", params=series_params)
                answer.raise_for_status()
                through_points = len(answer.json()["points"])
                source = answer.json().get("source")

            def floor() -> None:
                # The route's own cost: the same request answered from the embedded store,
                # which holds nothing here (no points to read, bucket or serialise).
                client.get(
                    "/api/v1/metrics/series", params={**series_params, "source": "embedded"}
                ).raise_for_status()

            direct_ms, through_ms, floor_ms = _interleaved_ms((direct, through, floor), runs)
    row: dict[str, Any] = {
        "name": name,
        "backend": backend,
        "value": round(through_ms, 1),
        "unit": "ms (median)",
        "baseline": round(direct_ms, 1),
        "ratio": round(direct_ms / through_ms, 3),
        "target": target,
        "points": f"{through_points} via Shipboard, {direct_points} from the store",
        "route_empty_ms": round(floor_ms, 1),
        "store": victoria_metrics_version(),
    }
    if source != "store":
        # The series API answered from its own (empty) SQL table, not from the store.
        row["name"] = f"{name} [NOT FROM THE STORE: the series API read SQL]"
        row["note"] = (
            "the series API does not read SHIPBOARD_PROMETHEUS_URL in this build; the value is "
            "the route over an empty SQL table, not the figure"
        )
    elif through_points != direct_points:
        row["note"] = "Shipboard and the store answered different numbers of points"
    return [row]


def _interleaved_ms(calls: Sequence[Callable[[], object]], runs: int) -> list[float]:
    """The median ms of each call over ``runs`` rounds, the calls taking turns within a round:
    on a machine shared with other work, load that comes and goes falls on every side alike."""
    for call in calls:
        call()  # warm: connections open, caches of the route's first call filled
    timings: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, times in zip(calls, timings, strict=True):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
    return [statistics.median(times) for times in timings]


# --- a PromQL check in a deployment's verification --------------------------------------------

CHECK_QUERY = 'sum(checkout_errors{environment="$environment"})'


def bench_store_analysis(url: str, backend: str, rounds: int) -> list[dict[str, Any]]:
    """One round of a deployment's post-deploy watch with one PromQL check (``watch_due``: the
    due watch read, the query rendered and asked of VictoriaMetrics, the verdict judged and
    written with its log line), median of ``rounds``; against the store's own time for the same
    instant query sent straight to it, median of ``rounds``. The figure is the difference."""
    name = "PromQL check: watch round beyond the store's query"
    target = "overhead <= 50 ms"
    if skipped := _skipped(name, backend, "ms (median)", target):
        return skipped
    import sqlalchemy as sa

    from shipboard.core.promql import PromStore, StoreSettings, render
    from shipboard.db.engine import system_transaction
    from shipboard.deployments.models import DeploymentRun
    from shipboard.pipelines.watch import watch_due

    with victoria_metrics() as store:
        series, _ = rw.series_for(
            name="checkout_errors",
            environment="staging",
            source="app",
            tags={},
            samples=[(int(time.time() * 1000) - 1000, 1.0)],
        )
        store.write(rw.encode([series]))
        store.flush()
        prom = PromStore(StoreSettings(url=store.url))
        with live_instance(url, "admin") as (app, engine, token, base_url):
            _start_watch(app, engine, token, base_url, prom)

            def make_due() -> None:
                with system_transaction(engine) as s:
                    s.execute(
                        sa.update(DeploymentRun)
                        .where(DeploymentRun.watch_state == "running")
                        .values(watch_next_at=datetime.now(UTC) - timedelta(seconds=1))
                    )

            # The store's own time: the same rendered query, same client library, one
            # connection, taking turns with the rounds.
            rendered = render(CHECK_QUERY, {"environment": "staging"})

            def store_query() -> None:
                store.client.get(
                    "/api/v1/query", params={"query": rendered, "time": f"{time.time():.3f}"}
                ).raise_for_status()

            def watch_round() -> None:
                evaluated = watch_due(engine, store=prom)
                if evaluated != 1:
                    raise RuntimeError(f"a watch round evaluated {evaluated} deployments, not 1")

            store_query()
            make_due()
            watch_round()  # warm
            round_times, query_times = [], []
            for _ in range(rounds):
                make_due()
                started = time.perf_counter()
                watch_round()
                round_times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                store_query()
                query_times.append((time.perf_counter() - started) * 1000)
            with system_transaction(engine) as s:
                results = s.execute(
                    sa.select(DeploymentRun.analysis).where(DeploymentRun.watch_state == "running")
                ).scalar_one()
            verdicts = {e["result"] for e in results if e.get("check") == "errors"}
            if verdicts != {"Successful"}:
                raise RuntimeError(f"the PromQL check's verdicts were {verdicts}, not Successful")
        prom.close()
        round_ms = statistics.median(round_times)
        query_ms = statistics.median(query_times)
    return [
        {
            "name": name,
            "backend": backend,
            "value": round(round_ms, 1),
            "unit": "ms (median)",
            "baseline": round(query_ms, 1),
            "ratio": round(round_ms / query_ms, 2),
            "target": target,
            "overhead_ms": round(round_ms - query_ms, 1),
            "store": victoria_metrics_version(),
        }
    ]


def _start_watch(app: Any, engine: Engine, token: str, base_url: str, prom: PromStore) -> None:
    """Staging's pipeline with a watch of one PromQL check, and a deployment through it to
    ``success``, its watch running; the worker that ran it is stopped, so no round but the
    timed ones runs."""
    from shipboard.pipelines.worker import Worker, start_in_thread

    worker = Worker(engine, app.state.keyring, poll_s=0.05, metrics_store=prom)
    app.state.wake_worker = worker.wake.set
    thread, stop = start_in_thread(worker)
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        client.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "pipeline": {
                        "steps": [{"name": "ship", "stage": "deploy", "run": "true"}],
                        "watch": {
                            # Long enough that the watch is still running at the end.
                            "window_s": 86_400,
                            "interval_s": 3600,
                            "checks": [
                                {
                                    "name": "errors",
                                    "kind": "promql",
                                    "query": CHECK_QUERY,
                                    "op": "<",
                                    "value": 5,
                                }
                            ],
                        },
                    }
                }
            },
        ).raise_for_status()
        answer = client.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"},
        )
        answer.raise_for_status()
        did = answer.json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/deployments/{did}").json()["status"] != "success":
            if time.monotonic() > deadline:
                raise RuntimeError("the deployment did not succeed within 60 s")
            time.sleep(0.02)
    # The worker's own watch rounds would interleave with the timed ones.
    stop.set()
    thread.join(timeout=30)
