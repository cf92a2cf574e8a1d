"""Prometheus scraping of the targets in an environment's ``config.monitoring.scrape``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families

from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy, OutboundRefused

log = structlog.get_logger("shipboard.scrape")
TIMEOUT_S = 10.0
MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    environment: str
    url: str
    interval_s: float
    labels: dict[str, str]


def targets(environment: str, config: dict[str, Any]) -> list[Target]:
    """The valid targets of an environment's config (invalid entries are skipped, logged)."""
    out = []
    for entry in (config.get("monitoring") or {}).get("scrape") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            log.warning("scrape_target_invalid", environment=environment, entry=str(entry)[:200])
            continue
        interval = entry.get("interval_s", 60)
        labels = entry.get("labels") or {}
        out.append(
            Target(
                environment,
                entry["url"],
                float(interval) if isinstance(interval, int | float) and interval > 0 else 60.0,
                {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            )
        )
    return out


def scrape(
    target: Target, *, now: datetime | None = None, outbound: OutboundPolicy = DEFAULT_POLICY
) -> list[dict[str, Any]]:
    """Fetch and parse one target; always returns at least ``shipboard_scrape_up`` (0 or 1)."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    base = {"environment": target.environment, "source": "application"}
    meta = {"scrape_target": target.url, **target.labels}
    try:
        with outbound.client(timeout=TIMEOUT_S) as client:
            response = client.get(target.url, headers={"Accept": "text/plain"})
        response.raise_for_status()
        if len(response.content) > MAX_BYTES:
            raise ValueError(f"response larger than {MAX_BYTES} bytes")
        rows = []
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if not math.isfinite(sample.value):
                    continue
                # The parser gives seconds, or a Timestamp object for OpenMetrics input.
                stamp = float(sample.timestamp) if sample.timestamp is not None else None
                when = datetime.fromtimestamp(stamp, UTC) if stamp else now
                rows.append(
                    {
                        **base,
                        "name": sample.name,
                        "value": float(sample.value),
                        "timestamp": when,
                        "tags": {**target.labels, **{k: str(v) for k, v in sample.labels.items()}},
                    }
                )
    except (httpx.HTTPError, ValueError, UnicodeDecodeError, OutboundRefused) as exc:
        log.warning(
            "scrape_failed",
            environment=target.environment,
            target=target.url,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return [
            {**base, "name": "shipboard_scrape_up", "value": 0.0, "timestamp": now, "tags": meta}
        ]
    duration = time.perf_counter() - started
    return [
        *rows,
        {**base, "name": "shipboard_scrape_up", "value": 1.0, "timestamp": now, "tags": meta},
        {
            **base,
            "name": "shipboard_scrape_samples",
            "value": float(len(rows)),
            "timestamp": now,
            "tags": meta,
        },
        {
            **base,
            "name": "shipboard_scrape_duration_seconds",
            "value": duration,
            "timestamp": now,
            "tags": meta,
        },
    ]
