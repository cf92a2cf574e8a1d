"""A small HTTP load tool, run in its own process so it does not share the server's GIL:
``python -m bench.load URL --token T --concurrency 32 --seconds 10`` prints one JSON line with
requests/s and latency percentiles; ``--post FILE --requests N`` sends FILE N times per client."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import httpx


async def _post(
    url: str,
    token: str | None,
    concurrency: int,
    requests: int,
    body: bytes,
    content_type: str,
    retry_busy: bool = False,
) -> dict[str, Any]:
    """``requests`` POSTs of ``body`` from each of ``concurrency`` clients. With ``retry_busy``,
    a 503 is retried after its Retry-After under the same Idempotency-Key, as a well-behaved
    client (``shipboard.client``) does; ``statuses`` then counts every answer, retries too."""
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    statuses: Counter[int] = Counter()
    final: Counter[int] = Counter()
    async with httpx.AsyncClient(headers=headers, timeout=300) as client:

        async def worker() -> None:
            for _ in range(requests):
                key = {"Idempotency-Key": uuid.uuid4().hex} if retry_busy else {}
                for _attempt in range(10):
                    response = await client.post(url, content=body, headers=key)
                    statuses[response.status_code] += 1
                    if not (retry_busy and response.status_code == 503):
                        break
                    await asyncio.sleep(min(float(response.headers.get("Retry-After", 1)), 10))
                final[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    errors = sum(n for status, n in final.items() if status >= 300)
    # Which statuses, not just how many failed: a 503 (busy, retry) and a 422 are different bugs.
    return {
        "requests": concurrency * requests,
        "errors": errors,
        "seconds": elapsed,
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "retried": sum(statuses.values()) - sum(final.values()),
    }


async def _run(url: str, token: str | None, concurrency: int, seconds: float) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--post", help="POST this file's bytes instead of GETting")
    parser.add_argument("--requests", type=int, default=1, help="with --post: per client")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument(
        "--retry-busy", action="store_true", help="with --post: retry a 503 after Retry-After"
    )
    args = parser.parse_args()
    if args.post:
        with open(args.post, "rb") as handle:
            body = handle.read()
        result = asyncio.run(
            _post(
                args.url,
                args.token,
                args.concurrency,
                args.requests,
                body,
                args.content_type,
                args.retry_busy,
            )
        )
    else:
        result = asyncio.run(_run(args.url, args.token, args.concurrency, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
