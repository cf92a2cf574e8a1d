"""The Python client: typed methods against a live server, and its retry rules against a
scripted transport (the network failures a test cannot otherwise produce on demand)."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest

from shipboard.client import (
    ApiError,
    Client,
    NoToken,
    ServerUnreachable,
    ShipboardClient,
    _ProgressReader,
)
from shipboard.core.errors import InvalidInput
from shipboard.deployments.schemas import DeploymentDetail
from tests.support.live import Clients
from tests.support.paths import FIXTURES


def _scripted(
    *outcomes: int | type[httpx.TransportError],
) -> tuple[Client, list[httpx.Request]]:
    """A client whose transport answers with ``outcomes`` in turn: a status, or an error."""
    seen: list[httpx.Request] = []
    queue = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0)
        if isinstance(outcome, int):
            return httpx.Response(outcome, json={"accepted": 0} if outcome < 400 else {})
        raise outcome("scripted", request=request)

    client = Client(
        "http://shipboard.test", "shp_test", backoff_s=0.001, transport=httpx.MockTransport(handler)
    )
    return client, seen


def test_get_is_retried_after_network_errors_and_gateway_answers() -> None:
    client, seen = _scripted(httpx.ConnectError, httpx.ReadTimeout, 503, 200)
    assert client.get("/api/v1/environments") == {"accepted": 0}
    assert len(seen) == 4


def test_post_is_retried_only_when_nothing_was_sent() -> None:
    client, seen = _scripted(httpx.ConnectError, 201)
    assert client.request("POST", "/api/v1/deployments", json={}) == {"accepted": 0}
    assert len(seen) == 2
    # The server may have acted on a POST whose answer was lost: not repeated.
    client, seen = _scripted(httpx.ReadTimeout, 201)
    with pytest.raises(ServerUnreachable, match="may or may not have been applied"):
        client.request("POST", "/api/v1/deployments", json={})
    assert len(seen) == 1
    client, seen = _scripted(503, 201)
    with pytest.raises(ApiError) as raised:
        client.request("POST", "/api/v1/deployments", json={})
    assert raised.value.status == 503


def test_post_with_an_idempotency_key_is_retried() -> None:
    client, seen = _scripted(httpx.ReadError, 502, 200)
    assert client.push_metrics([], idempotency_key="k-1") == 0
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k-1"] * 3


def test_retries_give_up_with_a_clear_error() -> None:
    client, seen = _scripted(*[httpx.ConnectError] * 4)
    with pytest.raises(ServerUnreachable, match=r"cannot reach .* after 4 attempts"):
        client.get("/api/v1/environments")
    assert len(seen) == 4


def test_a_client_needs_a_token_and_keeps_its_old_name() -> None:
    with pytest.raises(NoToken):
        Client("http://shipboard.test", None)
    assert ShipboardClient is Client


def test_bad_arguments_fail_before_anything_is_sent() -> None:
    client, seen = _scripted()
    with pytest.raises(InvalidInput, match="commit_sha"):
        client.create_deployment("staging", "1.0.0", "not-hex")
    with pytest.raises(InvalidInput, match="status"):
        client.report_status("00000000-0000-4000-8000-000000000000", "done")
    assert seen == []


def test_upload_progress_follows_reads_and_rewinds() -> None:
    moved: list[int] = []
    reader = _ProgressReader(io.BytesIO(b"x" * 100), moved.append)
    assert reader.read(60) == b"x" * 60
    assert reader.read(60) == b"x" * 40
    reader.seek(0)
    assert sum(moved) == 0
    assert reader.read() == b"x" * 100
    assert sum(moved) == 100


def test_typed_methods_against_the_server(
    clients: Clients, make_user: Callable[[str, str], str]
) -> None:
    with Client(clients.server.base_url, clients.tokens["service"]) as ci:
        created = ci.create_deployment(
            "development", "4.2.0", "ABCDEF1", logs_url="https://ci.example/jobs/1"
        )
        assert isinstance(created, DeploymentDetail)
        assert (created.commit_sha, created.status) == ("abcdef1", "pending")
        ci.report_status(created.id, "building")
        ci.report_status(created.id, "deploying")
        assert ci.add_logs(created.id, [{"level": "info", "message": "hi", "source": "ci"}]) == 1
        done = ci.report_status(created.id, "success", deploy_time=1200)
        assert (done.status, done.deploy_time) == ("success", 1200)
        seen: list[str] = []
        final = ci.wait_for_deployment(created.id, on_log=lambda line: seen.append(line.message))
        assert final.status == "success"
        assert "hi" in seen
        page = ci.list_deployments(environment="development")
        assert [d.id for d in page.items] == [created.id]
        assert [line.message for line in ci.logs(created.id, level="info").items][-1].startswith(
            "status deploying -> success"
        )
        assert (
            ci.push_metrics(
                [{"name": "cpu", "value": 1, "environment": "development", "source": "ci"}]
            )
            == 1
        )
        scan = ci.import_scan(FIXTURES / "security" / "bandit" / "dd_no_vuln.json", "development")
        assert scan["tool"] == "bandit"
        with pytest.raises(ApiError) as refused:
            ci.rollback(environment="development")
        assert refused.value.status == 403
    with Client(clients.server.base_url, make_user("client-viewer", "viewer")) as viewer:
        with pytest.raises(ApiError) as forbidden:
            viewer.create_deployment("development", "1.0.0", "abcdef1")
        assert forbidden.value.status == 403
        assert viewer.report("dora", environment="development")["environment"] == "development"
