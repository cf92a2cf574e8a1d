"""Request dependencies of environments: each environment's own write budget
(``limits.api_rate_limit``), spent per caller; environments shown to a route on the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from shipboard.auth.deps import current_principal
from shipboard.auth.schemas import Principal
from shipboard.core.ratelimit import RateLimiter
from shipboard.environments.models import Environment
from shipboard.environments.schemas import EnvironmentRead
from shipboard.environments.service import rate_limit_per_minute, to_read
from shipboard.http.db import DbSession, RequestDb


def spend_budget(request: Request, db: Session, principal: Principal, environment: str) -> None:
    """Spend one request of the environment's ``limits.api_rate_limit`` for this caller."""
    per_minute = rate_limit_per_minute(db, name=environment)
    if per_minute:
        limiter: RateLimiter = request.app.state.rate_limiter
        caller = str(principal.token_id or principal.name)
        limiter.hit(per_minute, "env-writes", environment, caller)


async def spend_budget_on_loop(
    request: Request, db: RequestDb, principal: Principal, environment: str
) -> None:
    """``spend_budget`` for a route on the event loop: the database read runs in the request's
    transaction; the budget, which may live in Redis, is spent off the loop when it does."""
    per_minute = await db.run(rate_limit_per_minute, name=environment)
    if not per_minute:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    caller = str(principal.token_id or principal.name)
    await limiter.off_loop(limiter.hit, per_minute, "env-writes", environment, caller)


async def environments_shown(
    request: Request, rows: Sequence[Environment], *, reveal_credentials: bool
) -> list[EnvironmentRead]:
    """``to_read`` of environments read on the event loop. Revealing sealed credentials
    decrypts them, and the keyring reads its key file again when another process has rotated
    the key: that runs in a worker thread, everything else on the loop."""
    keyring = request.app.state.keyring

    def shown() -> list[EnvironmentRead]:
        return [to_read(e, reveal_credentials=reveal_credentials, keyring=keyring) for e in rows]

    if reveal_credentials and any(e.config_secrets for e in rows):
        return await anyio.to_thread.run_sync(shown)
    return shown()


def environment_rate_limit(
    request: Request,
    name: str,
    db: DbSession,
    principal: Annotated[Principal, Depends(current_principal)],
) -> None:
    spend_budget(request, db, principal, name)


EnvironmentRateLimit = Annotated[None, Depends(environment_rate_limit)]
