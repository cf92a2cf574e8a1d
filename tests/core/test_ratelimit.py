"""The rate limiter's counters from a route on the event loop: in memory at once, in Redis from
a worker thread (a network round trip must not hold up the loop)."""

from __future__ import annotations

import os
import threading

import anyio
import pytest

from shipboard.core.ratelimit import RateLimiter

REDIS_URL = os.environ.get("SHIPBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _thread_of_hit(limiter: RateLimiter) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        def hit() -> int:
            limiter.hit(1000, "off-loop-test", str(threading.get_ident()))
            return threading.get_ident()

        return threading.get_ident(), await limiter.off_loop(hit)

    return anyio.run(main)


def test_counters_in_memory_are_spent_on_the_loop() -> None:
    loop_thread, ran_on = _thread_of_hit(RateLimiter(None))
    assert ran_on == loop_thread


def test_counters_in_redis_are_spent_in_a_worker_thread() -> None:
    limiter = RateLimiter(REDIS_URL)
    if not limiter.storage.check():  # False when Redis does not answer
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_URL} (.ci/run starts one)")
        pytest.skip(f"no Redis at {REDIS_URL}")
    loop_thread, ran_on = _thread_of_hit(limiter)
    assert ran_on != loop_thread
