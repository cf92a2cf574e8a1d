"""Prometheus scraping of the targets in an environment's ``config.monitoring.scrape``.

Samples get the target's labels as Prometheus gives them: ``job`` (the target's ``job``),
``instance`` (the URL's host:port) and the target's static ``labels``. With ``honor_labels``
false (the default) a sample label that clashes with one of those is kept as
``exported_<name>``; with it true the sample's own value wins. NaN and ±Inf samples are not
stored (SQLite keeps NaN as NULL and JSON carries neither): they are counted per reason in
``shipboard_scrape_samples_dropped``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy, OutboundRefused
from shipboard.core.redaction import redact_url
from shipboard.environments.validation import ScrapeTarget

log = structlog.get_logger("shipboard.scrape")
TIMEOUT_S = 10.0
MAX_BYTES = 16 * 1024 * 1024
CHUNK = 64 * 1024
# The metric name at the start of a sample line (text exposition format 0.0.4).
_EXPOSED_NAME = re.compile(r"^[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)", re.MULTILINE)


@dataclass(frozen=True)
class Target:
    environment: str
    url: str
    interval_s: float
    labels: dict[str, str]
    job: str = "scrape"
    honor_labels: bool = False

    @property
    def instance(self) -> str:
        """host:port, the port filled in from the scheme as Prometheus' ``__address__`` is."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def target_labels(self) -> dict[str, str]:
        """The labels Prometheus would attach: static labels, then job and instance unless the
        static labels set them (a static ``job``/``instance`` overrides, as in a scrape_config)."""
        return {"job": self.job, "instance": self.instance, **self.labels}


def targets(environment: str, config: dict[str, Any]) -> list[Target]:
    """The valid targets of an environment's config (invalid entries are skipped, logged; the
    API refuses them on write, so only a config stored before that check can hold one)."""
    out = []
    for entry in (config.get("monitoring") or {}).get("scrape") or []:
        try:
            checked = ScrapeTarget.model_validate(entry)
        except ValidationError:
            log.warning("scrape_target_invalid", environment=environment, entry=str(entry)[:200])
            continue
        out.append(
            Target(
                environment,
                checked.url,
                checked.interval_s,
                dict(checked.labels),
                job=checked.job,
                honor_labels=checked.honor_labels,
            )
        )
    return out


class TooLarge(ValueError):
    """The target's answer passed the size limit; ``read`` is how many bytes were read."""

    def __init__(self, limit: int, read: int) -> None:
        super().__init__(f"response larger than {limit} bytes")
        self.read = read


def fetch(client: httpx.Client, url: str, *, max_bytes: int = MAX_BYTES) -> bytes:
    """GET ``url`` and read its body in chunks, stopping at ``max_bytes`` (decoded): a target
    that answers hundreds of megabytes costs no more than the limit and one chunk."""
    with client.stream("GET", url, headers={"Accept": "text/plain"}) as response:
        response.raise_for_status()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(max_bytes, 0)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes, size)
            chunks.append(chunk)
    return b"".join(chunks)


def relabel(
    sample_labels: dict[str, str], target: dict[str, str], *, honor: bool
) -> dict[str, str]:
    """Prometheus' merge of a sample's labels with its target's (scrape.go, mutateSampleLabels)."""
    merged = dict(sample_labels)
    for name, value in target.items():
        if honor:
            merged.setdefault(name, value)
            continue
        if name in merged:
            exported = f"exported_{name}"
            while exported in merged:  # as Prometheus: exported_exported_job …
                exported = f"exported_{exported}"
            merged[exported] = merged[name]
        merged[name] = value
    return merged


def scrape(
    target: Target,
    *,
    now: datetime | None = None,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    max_bytes: int = MAX_BYTES,
) -> list[dict[str, Any]]:
    """Fetch and parse one target; always returns at least ``shipboard_scrape_up`` (0 or 1)."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    base = {"environment": target.environment, "source": "application"}
    labels = target.target_labels()
    # A tag every viewer reads: the URL without its password or token.
    meta = {"scrape_target": redact_url(target.url), **labels}
    dropped = {"nan": 0, "inf": 0}
    try:
        with outbound.client(timeout=TIMEOUT_S) as client:
            body = fetch(client, target.url, max_bytes=max_bytes)
        rows = []
        text = body.decode("utf-8")
        exposed = set(_EXPOSED_NAME.findall(text))
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                # prometheus_client names a counter's samples `<name>_total` even when the
                # target exposed `<name>`; Prometheus stores the name as exposed.
                name = sample.name
                if name not in exposed and family.name in exposed:
                    name = family.name
                if not math.isfinite(sample.value):
                    dropped["nan" if math.isnan(sample.value) else "inf"] += 1
                    continue
                # The parser gives seconds, or a Timestamp object for OpenMetrics input.
                stamp = float(sample.timestamp) if sample.timestamp is not None else None
                when = datetime.fromtimestamp(stamp, UTC) if stamp else now
                own = {k: str(v) for k, v in sample.labels.items()}
                rows.append(
                    {
                        **base,
                        "name": name,
                        "value": float(sample.value),
                        "timestamp": when,
                        "tags": relabel(own, labels, honor=target.honor_labels),
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

    def meta_row(name: str, value: float, **extra: str) -> dict[str, Any]:
        return {**base, "name": name, "value": value, "timestamp": now, "tags": {**meta, **extra}}

    return [
        *rows,
        meta_row("shipboard_scrape_up", 1.0),
        meta_row("shipboard_scrape_samples", float(len(rows))),
        *(
            meta_row("shipboard_scrape_samples_dropped", float(count), reason=reason)
            for reason, count in dropped.items()
        ),
        meta_row("shipboard_scrape_duration_seconds", duration),
    ]
