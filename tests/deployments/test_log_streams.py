"""Live-log streams (SSE) are bounded: per user, per process, and one poll per deployment.

1,000 streams from one viewer made every other request take seconds (issue 18, item 7): each
stream polled the database on its own. Now a user and a process have a budget of streams (429
with Retry-After past it), and every stream of a deployment is served from one poll.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from shipboard.deployments import stream
from tests.support.databases import Database
from tests.support.live import LiveServer, wait_for
from tests.support.problems import assert_problem


@pytest.fixture
def limited(db: Database) -> Iterator[LiveServer]:
    """A server of its own with small stream budgets (the shared one keeps the defaults)."""
    live = LiveServer(db.url, streams_per_user=2, streams_per_process=4)
    live.start()
    yield live
    live.stop()


def _client(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _deployment(server: LiveServer, token: str) -> str:
    with _client(server, token) as client:
        created = client.post(
            "/api/v1/deployments",
            json={"environment": "development", "version": "1.0.0", "commit_sha": "abcdef1"},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def _open(stack: ExitStack, client: httpx.Client, did: str) -> httpx.Response:
    """An open stream whose first event has arrived (so it holds its slot on the server)."""
    response = stack.enter_context(client.stream("GET", f"/api/v1/deployments/{did}/logs/stream"))
    assert response.status_code == 200, response.read()
    # Not a for loop with break: closing the line iterator would close the connection.
    lines = response.iter_lines()
    while not next(lines).startswith("data:"):
        pass
    _held.append(lines)
    return response


_held: list[Iterator[str]] = []


def test_the_n_plus_first_stream_of_a_user_gets_429(
    limited: LiveServer, make_user: Callable[[str, str], str]
) -> None:
    deployer = make_user("stream-deployer", "deployer")
    viewer = make_user("stream-viewer", "viewer")
    other = make_user("stream-other", "viewer")
    did = _deployment(limited, deployer)
    with _client(limited, viewer) as client, ExitStack() as stack:
        for _ in range(2):
            _open(stack, client, did)
        refused = client.get(f"/api/v1/deployments/{did}/logs/stream")
        body = assert_problem(refused, 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert "2" in str(body["detail"])
        # Another user is not affected by this one's budget.
        with _client(limited, other) as second:
            _open(stack, second, did)
            # The process budget (4) is now reached by three streams of two users... plus one.
            third = make_user("stream-third", "viewer")
            with _client(limited, third) as third_client:
                _open(stack, third_client, did)
                process_refused = third_client.get(f"/api/v1/deployments/{did}/logs/stream")
                assert_problem(process_refused, 429)
                assert "Retry-After" in process_refused.headers
    _held.clear()
    # Closed streams give their slots back.
    with _client(limited, viewer) as client:

        def reopened() -> bool:
            with client.stream("GET", f"/api/v1/deployments/{did}/logs/stream") as response:
                return response.status_code == 200

        wait_for(reopened, timeout=10)


def _listen(
    server: LiveServer, token: str, did: str, events: list[tuple[str, str]], ready: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.base_url}/api/v1/deployments/{did}/logs/stream"
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        event = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event, line[5:].strip()))
                ready.set()
                if event == "end":
                    return


def test_many_listeners_of_one_deployment_share_one_poll(
    db: Database, make_user: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveServer(db.url, streams_per_user=50, streams_per_process=100)
    live.start()
    try:
        deployer = make_user("fanout-deployer", "deployer")
        viewer = make_user("fanout-viewer", "viewer")
        did = _deployment(live, deployer)
        polls: list[float] = []
        real_poll = stream.poll

        def counting_poll(*args: Any, **kwargs: Any) -> Any:
            polls.append(time.monotonic())
            return real_poll(*args, **kwargs)

        monkeypatch.setattr(stream, "poll", counting_poll)
        listeners = 20
        events: list[list[tuple[str, str]]] = [[] for _ in range(listeners)]
        ready = [threading.Event() for _ in range(listeners)]
        threads = [
            threading.Thread(target=_listen, args=(live, viewer, did, events[i], ready[i]))
            for i in range(listeners)
        ]
        for thread in threads:
            thread.start()
        for event in ready:
            assert event.wait(20)
        # Every stream is open and idle: count the polls of two seconds.
        polls.clear()
        time.sleep(2.0)
        counted = len(polls)
        # One poll every POLL_S for the deployment, not one per listener (that would be ~160).
        assert counted <= 2.0 / stream.POLL_S + 3, counted
        with _client(live, deployer) as client:
            appended = client.post(
                f"/api/v1/deployments/{did}/logs",
                json={"logs": [{"level": "info", "message": "to everyone", "source": "deploy"}]},
            )
            assert appended.status_code == 201, appended.text
            for status in ("building", "deploying", "success"):
                response = client.post(f"/api/v1/deployments/{did}/status", json={"status": status})
                assert response.status_code == 200, response.text
        for thread in threads:
            thread.join(timeout=20)
            assert not thread.is_alive()
        for received in events:
            messages = [json.loads(data)["message"] for kind, data in received if kind == "log"]
            assert messages[0].startswith("created by fanout-deployer")
            assert "to everyone" in messages
            assert messages[-1] == "status deploying -> success (fanout-deployer)"
            assert len(messages) == len(set(messages))  # each line once
            assert received[-1] == ("end", json.dumps({"status": "success"}))
    finally:
        live.stop()


@pytest.mark.parametrize("held", [stream.BUFFER_LINES, 2])
def test_a_late_listener_gets_the_whole_log(
    db: Database, make_user: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """A stream that joins a deployment others already follow still starts at its first line;
    when the feed has let go of early lines (held=2), the late one reads those from the
    database once, then joins the feed without a gap or a repeat."""
    monkeypatch.setattr(stream, "BUFFER_LINES", held)
    live = LiveServer(db.url)
    live.start()
    try:
        deployer = make_user("late-deployer", "deployer")
        did = _deployment(live, deployer)
        early: list[tuple[str, str]] = []
        early_ready = threading.Event()
        first = threading.Thread(target=_listen, args=(live, deployer, did, early, early_ready))
        first.start()
        assert early_ready.wait(10)
        with _client(live, deployer) as client:
            lines = [
                {"level": "info", "message": f"line {i}", "source": "deploy"} for i in range(3)
            ]
            client.post(f"/api/v1/deployments/{did}/logs", json={"logs": lines}).raise_for_status()
            wait_for(lambda: any("line 2" in data for _, data in early))
            late: list[tuple[str, str]] = []
            late_ready = threading.Event()
            second = threading.Thread(target=_listen, args=(live, deployer, did, late, late_ready))
            second.start()
            assert late_ready.wait(10)
            for status in ("building", "deploying", "failed"):
                client.post(f"/api/v1/deployments/{did}/status", json={"status": status})
        first.join(timeout=20)
        second.join(timeout=20)
        assert [d for k, d in early if k == "log"] == [d for k, d in late if k == "log"]
        assert len([d for k, d in late if k == "log"]) >= 7
        assert late[-1] == ("end", json.dumps({"status": "failed"}))
    finally:
        live.stop()
