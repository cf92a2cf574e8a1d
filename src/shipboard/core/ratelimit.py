"""Per-minute request budgets: in memory for one process, in Redis when several share them."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from shipboard.core.errors import RateLimited


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.storage = storage_from_string(redis_url or "memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)

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
