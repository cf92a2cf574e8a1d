"""A total deadline on outbound requests (core/deadline.py): httpx's timeout restarts with every
byte read, so a server dripping its headers or body one byte at a time held the caller — a
scrape thread, a notification sender, a health check — for as long as it liked. Both clients
that reach other servers end such a request at its deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from shipboard.core import deadline
from shipboard.core.netguard import DEFAULT_POLICY
from shipboard.monitoring.scrape import fetch
from tests.support.hostile import HostileStore

CLIENTS: dict[str, Callable[[], httpx.Client]] = {
    # What scrapes, notifications and health checks use: their timeout is the whole request's.
    "guarded": lambda: DEFAULT_POLICY.client(timeout=1.0),
    "deadline": lambda: deadline.client(timeout_s=1.0, total_s=1.0),
}


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_a_dripping_answer_ends_at_the_deadline(
    hostile_store: HostileStore, where: str, kind: str
) -> None:
    # One byte every 0.2 s never trips the 1-second read timeout: 200 bytes would take 40 s.
    hostile_store.answer(b"x" * 200)
    if where == "headers":
        hostile_store.drip_headers_s = 0.2
    else:
        hostile_store.drip_s = 0.2
    started = time.monotonic()
    with CLIENTS[kind]() as client, pytest.raises(httpx.ReadTimeout):
        fetch(client, hostile_store.url)
    assert time.monotonic() - started < 3


def test_each_request_gets_its_own_deadline(hostile_store: HostileStore) -> None:
    # The deadline is per request, not per client: a reused connection starts afresh.
    hostile_store.answer(b"fine")
    with deadline.client(timeout_s=1.0, total_s=0.5) as client:
        for _ in range(3):
            assert client.get(hostile_store.url).content == b"fine"
            time.sleep(0.3)
