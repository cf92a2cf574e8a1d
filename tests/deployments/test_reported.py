"""Reported deployments (no pipeline): the lifecycle through the API, the state machine, logs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from shipboard.core.errors import Conflict
from shipboard.deployments import state, stream
from tests.support.live import Clients, wait_for
from tests.support.problems import assert_problem

DEPLOY = {"environment": "development", "version": "1.0.0", "commit_sha": "ABCDEF1"}


def _create(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/deployments", json={**DEPLOY, **overrides})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _status(client: httpx.Client, deployment_id: str, status: str, **extra: Any) -> httpx.Response:
    return client.post(
        f"/api/v1/deployments/{deployment_id}/status", json={"status": status, **extra}
    )


def test_state_machine_allows_only_the_documented_transitions() -> None:
    every = ("pending", "building", "deploying", "success", "failed", "rolled_back")
    allowed = {(a, b) for a in every for b in every if b in state.TRANSITIONS[a]}
    assert allowed == {
        ("pending", "building"),
        ("pending", "failed"),
        ("building", "deploying"),
        ("building", "failed"),
        ("deploying", "success"),
        ("deploying", "failed"),
        ("success", "rolled_back"),
        ("failed", "rolled_back"),
    }
    with pytest.raises(Conflict, match="allowed: building, failed"):
        state.check_transition("pending", "success")
    with pytest.raises(Conflict, match="final"):
        state.check_transition("rolled_back", "failed")
    assert state.can_roll_back("failed", deploy_ran=True)
    assert not state.can_roll_back("failed", deploy_ran=False)


def test_reported_lifecycle(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        created = _create(client, commit_timestamp="2026-11-20T10:00:00+01:00")
        assert created["status"] == "pending"
        assert created["triggered_by"] == "deployer-user"
        assert created["commit_sha"] == "abcdef1"
        assert created["managed"] is False
        assert {g["gate"] for g in created["gates"]} >= {"deploy_freeze", "freeze_window"}
        did = created["id"]
        for status in ("building", "deploying"):
            assert _status(client, did, status).status_code == 200
        done = _status(client, did, "success", build_time=1200, deploy_time=3400).json()
        assert (done["status"], done["build_time"], done["deploy_time"]) == ("success", 1200, 3400)
        assert done["completed_at"] is not None
        logs = client.get(f"/api/v1/deployments/{did}/logs").json()["items"]
    transitions = [line["message"] for line in logs if "->" in line["message"]]
    assert transitions == [
        "status pending -> building (deployer-user)",
        "status building -> deploying (deployer-user)",
        "status deploying -> success (deployer-user)",
    ]


def test_invalid_transition_is_409_naming_the_allowed_ones(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        did = _create(client)["id"]
        body = assert_problem(_status(client, did, "success"), 409)
        assert body["allowed"] == ["building", "failed"]
        assert client.get(f"/api/v1/deployments/{did}").json()["status"] == "pending"
        assert_problem(_status(client, did, "rolled_back"), 422)


def test_only_the_triggerer_or_an_admin_reports_status(clients: Clients, make_user: Any) -> None:
    with clients.as_role("deployer") as client:
        did = _create(client)["id"]
    other = make_user("other-deployer", "deployer")
    response = httpx.post(
        f"{clients.server.base_url}/api/v1/deployments/{did}/status",
        json={"status": "building"},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert_problem(response, 403)
    with clients.as_role("admin") as admin:
        assert _status(admin, did, "building").status_code == 200
    with clients.as_role("service") as service:
        sid = _create(service)["id"]
        assert _status(service, sid, "building").status_code == 200


def test_bad_create_input_changes_nothing(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        for bad in (
            {**DEPLOY, "version": "-bad"},
            {**DEPLOY, "commit_sha": "xyz"},
            {**DEPLOY, "environment": "qa"},
            {**DEPLOY, "triggered_by": "someone-else"},
            {**DEPLOY, "commit_timestamp": "2026-11-20T10:00:00"},
        ):
            assert_problem(client.post("/api/v1/deployments", json=bad), 422)
        assert client.get("/api/v1/deployments").json()["items"] == []
    with clients.as_role("viewer") as viewer:
        assert_problem(viewer.post("/api/v1/deployments", json=DEPLOY), 403)


def test_list_filters_and_detail(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        first = _create(client, version="1.0.0")
        second = _create(client, environment="staging", version="2.0.0", commit_sha="1234567")
        by_env = client.get("/api/v1/deployments", params={"environment": "staging"}).json()
        by_sha = client.get("/api/v1/deployments", params={"commit_sha": "abcdef1"}).json()
        paged = client.get("/api/v1/deployments", params={"limit": 1}).json()
        rest = client.get(
            "/api/v1/deployments", params={"limit": 1, "cursor": paged["next_cursor"]}
        ).json()
        detail = client.get(f"/api/v1/deployments/{first['id']}").json()
        assert_problem(client.get("/api/v1/deployments", params={"status": "exploded"}), 422)
        assert_problem(client.get("/api/v1/deployments/not-a-uuid"), 422)
        assert_problem(client.get("/api/v1/deployments/00000000-0000-4000-8000-000000000000"), 404)
    assert [d["id"] for d in by_env["items"]] == [second["id"]]
    assert [d["id"] for d in by_sha["items"]] == [first["id"]]
    assert [d["id"] for d in paged["items"] + rest["items"]] == [second["id"], first["id"]]
    assert detail["approval"] == {"required": False, "approved_by": None, "approved_at": None}


def test_log_append_and_filters(clients: Clients) -> None:
    with clients.as_role("service") as client:
        did = _create(client)["id"]
        response = client.post(
            f"/api/v1/deployments/{did}/logs",
            json={
                "logs": [
                    {"level": "info", "message": "one", "source": "build"},
                    {"level": "error", "message": "two", "source": "deploy", "metadata": {"k": 1}},
                ]
            },
        )
        assert response.json() == {"accepted": 2}
        bad = client.post(
            f"/api/v1/deployments/{did}/logs",
            json={
                "logs": [
                    {"level": "info", "message": "ok", "source": "x"},
                    {"level": "loud", "message": "no", "source": "x"},
                ]
            },
        )
        body = assert_problem(bad, 422)
        assert any(e["loc"][:4] == ["body", "logs", 1, "level"] for e in body["errors"])  # type: ignore[union-attr]
        errors = client.get(f"/api/v1/deployments/{did}/logs", params={"level": "error"}).json()
        deploy = client.get(f"/api/v1/deployments/{did}/logs", params={"source": "deploy"}).json()
        everything = client.get(f"/api/v1/deployments/{did}/logs").json()["items"]
    assert [line["message"] for line in errors["items"]] == ["two"]
    assert deploy["items"][0]["metadata"] == {"k": 1}
    assert "ok" not in [line["message"] for line in everything]


def test_sse_stream_sends_stored_then_new_lines_then_end(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        did = _create(client)["id"]
    events: list[tuple[str, str]] = []
    connected = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {clients.tokens['viewer']}"}
        url = f"{clients.server.base_url}/api/v1/deployments/{did}/logs/stream"
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((event, line[5:].strip()))
                    connected.set()
                    if event == "end":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(10)  # the stored "created by" line arrived
    with clients.as_role("deployer") as client:
        client.post(
            f"/api/v1/deployments/{did}/logs",
            json={
                "logs": [{"level": "info", "message": "appended after connect", "source": "deploy"}]
            },
        )
        wait_for(lambda: any("appended after connect" in data for _, data in events), timeout=5)
        for status in ("building", "deploying", "success"):
            _status(client, did, status)
    listener.join(timeout=10)
    assert not listener.is_alive()
    messages = [json.loads(data)["message"] for event, data in events if event == "log"]
    assert messages[0].startswith("created by deployer-user")
    assert messages.index("appended after connect") < messages.index(
        "status deploying -> success (deployer-user)"
    )
    assert events[-1] == ("end", json.dumps({"status": "success"}))


def test_sse_stream_is_woken_by_a_commit_not_by_its_poll(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line appended through this process reaches the stream at once: with the fallback poll
    slowed to 30 s, only the commit's wake-up can deliver it within the 5 s allowed."""
    monkeypatch.setattr(stream, "POLL_S", 30.0)
    with clients.as_role("deployer") as client:
        did = _create(client)["id"]
    messages: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {clients.tokens['viewer']}"}
        url = f"{clients.server.base_url}/api/v1/deployments/{did}/logs/stream"
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:])["message"])
                    connected.set()
                    if messages[-1] == "woken":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(10)
    time.sleep(0.2)  # the stream is now waiting out its (30 s) poll
    with clients.as_role("deployer") as client:
        client.post(
            f"/api/v1/deployments/{did}/logs",
            json={"logs": [{"level": "info", "message": "woken", "source": "deploy"}]},
        ).raise_for_status()
    listener.join(timeout=5)
    assert messages[-1] == "woken"
    # The server's side of the stream is waiting out its 30 s poll; let it see the client gone
    # (a ring wakes it), so no poll of it overlaps the next test's cleanup.
    monkeypatch.setattr(stream, "POLL_S", 0.05)
    with clients.as_role("deployer") as client:
        client.post(
            f"/api/v1/deployments/{did}/logs",
            json={"logs": [{"level": "info", "message": "after", "source": "deploy"}]},
        ).raise_for_status()
    wait_for(lambda: stream.BELL.listening(uuid.UUID(did)) == 0, timeout=10)


def test_manual_rollback_of_a_reported_deployment(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        ids = []
        for version in ("1.0.0", "2.0.0"):
            did = _create(client, version=version)["id"]
            for status in ("building", "deploying", "success"):
                _status(client, did, status)
            ids.append(did)
        rollback = client.post(f"/api/v1/deployments/{ids[1]}/rollback")
        assert rollback.status_code == 201, rollback.text
        new = rollback.json()
        assert (new["version"], new["rollback_from"], new["status"]) == ("1.0.0", ids[1], "pending")
        for status in ("building", "deploying", "success"):
            _status(client, new["id"], status)
        original = client.get(f"/api/v1/deployments/{ids[1]}").json()
        assert original["status"] == "rolled_back"
        # Nothing succeeded before the first one: nothing to roll back to.
        assert_problem(client.post(f"/api/v1/deployments/{ids[0]}/rollback"), 409)
        # What serves now is the rollback (1.0.0); before it, only 1.0.0 again: nothing to go to.
        again = client.post("/api/v1/environments/development/rollback")
        assert_problem(again, 409)


def test_failed_rollback_is_reported_loudly(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        ids = []
        for version in ("1.0.0", "2.0.0"):
            did = _create(client, version=version)["id"]
            for status in ("building", "deploying", "success"):
                _status(client, did, status)
            ids.append(did)
        new = client.post("/api/v1/environments/development/rollback").json()
        assert new["rollback_from"] == ids[1]
        _status(client, new["id"], "failed", error_message="boom")
        original = client.get(f"/api/v1/deployments/{ids[1]}").json()
        lines = client.get(f"/api/v1/deployments/{ids[1]}/logs", params={"level": "error"}).json()
    assert original["status"] == "success"
    assert any("ROLLBACK FAILED" in line["message"] for line in lines["items"])


def test_cancel_pending_and_viewer_cannot(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        did = _create(client)["id"]
    with clients.as_role("viewer") as viewer:
        assert_problem(viewer.post(f"/api/v1/deployments/{did}/cancel"), 403)
    with clients.as_role("deployer") as client:
        done = client.post(f"/api/v1/deployments/{did}/cancel").json()
        assert (done["status"], done["error_message"]) == ("failed", "cancelled by deployer-user")
        assert_problem(client.post(f"/api/v1/deployments/{did}/cancel"), 409)
