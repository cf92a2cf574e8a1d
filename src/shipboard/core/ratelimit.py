"""Per-minute request budgets: in memory for one process, in Redis when several share them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from shipboard.core.errors import RateLimited

P = ParamSpec("P")
T = TypeVar("T")


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.storage = storage_from_string(redis_url or "memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.remote = bool(redis_url)

    async def off_loop(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``, a use of this limiter, from a route on the event loop:
        counters in Redis are a network round trip away, so it runs in a worker thread then;
        in memory it runs at once."""
        if self.remote:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        return fn(*args, **kwargs)

    def hit(self, per_minute: int, *identifiers: str, what: str = "requests") -> None:
        """Count one request; raise RateLimited (with Retry-After) once the budget is spent."""
        item = RateLimitItemPerMinute(per_minute)
        if self.limiter.hit(item, *identifiers):
            return
        raise self._refusal(item, identifiers, what)

    def check(self, per_minute: int, *identifiers: str, what: str = "requests") -> None:
        """Raise RateLimited if the budget is already spent, without spending any of it."""
        item = RateLimitItemPerMinute(per_minute)
        if not self.limiter.test(item, *identifiers):
            raise self._refusal(item, identifiers, what)

    def spend(self, per_minute: int, *identifiers: str) -> None:
        """Count one event against the budget; never raises (``check`` refuses the next)."""
        self.limiter.hit(RateLimitItemPerMinute(per_minute), *identifiers)

    def _refusal(
        self, item: RateLimitItemPerMinute, identifiers: tuple[str, ...], what: str
    ) -> RateLimited:
        stats = self.limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return RateLimited(
            f"more than {item.amount} {what} a minute; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
