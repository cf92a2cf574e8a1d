"""Outbound requests to stored URLs (webhooks, healthchecks, scrape targets) never reach
link-local or cloud metadata addresses unless SHIPBOARD_OUTBOUND_ALLOW says so.

DNS is the edge of the machine: where a test needs a name that resolves to 169.254.169.254 (or to
a loopback receiver), the policy gets a resolver answering for ``*.example.test`` names. Every
connection is real."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import IPv4Address
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from shipboard.config import Settings
from shipboard.core.netguard import (
    DEFAULT_POLICY,
    OutboundPolicy,
    OutboundRefused,
    parse_ipv4,
)
from shipboard.monitoring.scrape import Target, scrape
from shipboard.monitoring.tasks import Scraper
from shipboard.notifications import senders
from shipboard.notifications.delivery import send_due
from shipboard.pipelines.worker import Worker, start_in_thread
from tests.support.databases import Database
from tests.support.dns import METADATA, fake_resolver
from tests.support.live import Clients, LiveServer, Receiver, free_port, wait_for
from tests.support.problems import assert_problem

METADATA_RE = re.escape(METADATA)

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.0.1:8080/",
    "https://169.254.169.254/",
    "http://2852039166/",  # decimal
    "http://0xa9fea9fe/",  # hex
    "http://0xA9.0xFE.0xA9.0xFE/",  # hex per part
    "http://0251.0376.0251.0376/",  # octal (httpx cannot even parse it)
    "http://169.254.43518/",  # a.b.c with a 16-bit last part
    "http://169.254.169.254./",  # trailing dot
    "http://user:pw@169.254.169.254/",  # userinfo before the host
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]:9100/metrics",
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
    "http://100.100.100.200/",  # Alibaba Cloud metadata
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.Google.Internal./",
    "http://metadata/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "ftp://example.com/",
]

ALLOWED = [
    "http://127.0.0.1:9090/hook",
    "http://localhost:8080/",
    "http://[::1]:8080/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.10:9100/metrics",
    "http://169.253.255.255/",  # just outside link-local
    "http://169.255.0.0/",
    "https://hooks.slack.com/services/T000/B000/XXX",
    "http://metadata.example.com/",  # a name that merely contains the word
]


# --- the guard itself ---------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED)
def test_guard_refuses_link_local_metadata_and_other_schemes(url: str) -> None:
    reason = DEFAULT_POLICY.url_refusal(url)
    assert reason
    with pytest.raises(OutboundRefused):
        DEFAULT_POLICY.check_url(url)


@pytest.mark.parametrize("url", ALLOWED)
def test_guard_allows_loopback_private_and_public(url: str) -> None:
    assert DEFAULT_POLICY.url_refusal(url) is None


@pytest.mark.parametrize(
    "text",
    ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518", "169.16689662", "1.2.3.4"],
)
def test_ipv4_forms_are_read_as_the_c_library_reads_them(text: str) -> None:
    assert parse_ipv4(text) == IPv4Address(socket.inet_aton(text))


@pytest.mark.parametrize("text", ["example.com", "1e100.net", "1.2.3.4.5", "256.1.1.1", "0x1g"])
def test_names_are_not_mistaken_for_addresses(text: str) -> None:
    assert parse_ipv4(text) is None


def test_refusal_says_why_and_how_to_allow_it() -> None:
    reason = DEFAULT_POLICY.url_refusal("http://[::ffff:169.254.169.254]/")
    assert reason is not None
    assert "169.254.169.254" in reason
    assert "link-local" in reason
    assert "SHIPBOARD_OUTBOUND_ALLOW" in reason


def test_allow_setting_lets_chosen_networks_and_names_through() -> None:
    policy = Settings(outbound_allow="169.254.10.0/24, metadata.google.internal").outbound_policy
    assert policy.url_refusal("http://169.254.10.7/") is None
    assert policy.url_refusal("http://[::ffff:169.254.10.7]/") is None
    assert policy.url_refusal("http://metadata.google.internal/") is None
    assert policy.url_refusal("http://169.254.169.254/")  # only what was named
    assert policy.url_refusal("http://metadata/")


@pytest.mark.parametrize("value", ["169.254.0.0/33", "not a host", "10.0.0.0/8,, http://x/"])
def test_allow_setting_refuses_a_typo_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="SHIPBOARD_OUTBOUND_ALLOW"):
        Settings(outbound_allow=value)


def test_name_resolving_to_metadata_is_refused_at_connect_time() -> None:
    policy = DEFAULT_POLICY.with_resolver(fake_resolver({"rebind.example.test": [METADATA]}))
    url = "http://rebind.example.test/latest/meta-data/"
    assert policy.url_refusal(url) is None  # a name passes when stored...
    with policy.client(timeout=2) as client, pytest.raises(OutboundRefused, match=METADATA_RE):
        client.get(url)  # ...and is refused when it resolves to the metadata address


def test_one_blocked_answer_refuses_the_name() -> None:
    policy = DEFAULT_POLICY.with_resolver(
        fake_resolver({"mixed.example.test": ["127.0.0.1", METADATA]})
    )
    with pytest.raises(OutboundRefused, match=rf"mixed\.example\.test resolves to {METADATA_RE}"):
        policy.resolve("mixed.example.test", 80)


def test_allowed_name_may_resolve_to_link_local() -> None:
    policy = OutboundPolicy.parse(
        "consul.example.test", resolver=fake_resolver({"consul.example.test": ["169.254.1.1"]})
    )
    assert policy.resolve("consul.example.test", 8500) == ["169.254.1.1"]


def test_connection_goes_to_the_address_that_was_checked(receiver: Receiver) -> None:
    # The name exists only in the injected resolver: delivery works only if the socket connects
    # to the address the guard checked, not to a second lookup's answer.
    port = int(receiver.url.split(":")[2].split("/")[0])
    policy = DEFAULT_POLICY.with_resolver(fake_resolver({"hooks.example.test": ["127.0.0.1"]}))
    ok, status, error = senders.send(
        "webhook",
        {"url": f"http://hooks.example.test:{port}/hook"},
        {},
        {"message": "hi"},
        outbound=policy,
    )
    assert (ok, status, error) == (True, 200, None)
    assert receiver.payloads() == [{"message": "hi"}]
    assert receiver.requests[0][0]["Host"] == f"hooks.example.test:{port}"


@pytest.fixture
def redirector() -> Iterator[str]:
    """A loopback server answering every GET with a redirect to the metadata service."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://{METADATA}/latest/meta-data/iam/")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


def test_redirect_to_metadata_is_not_followed(redirector: str) -> None:
    with DEFAULT_POLICY.client(timeout=2) as client:
        assert client.get(redirector).status_code == 302
        # Even a caller that asks to follow it does not get there.
        with pytest.raises(OutboundRefused, match=METADATA_RE):
            client.get(redirector, follow_redirects=True)


def test_scrape_of_a_refused_target_reports_down_without_a_request() -> None:
    policy = DEFAULT_POLICY.with_resolver(fake_resolver({"metrics.example.test": [METADATA]}))
    rows = scrape(
        Target("staging", "http://metrics.example.test:9100/metrics", 60, {}), outbound=policy
    )
    assert [(r["name"], r["value"]) for r in rows] == [("shipboard_scrape_up", 0.0)]


# --- refused when stored (both backends) ----------------------------------------------------

STORED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://metadata.google.internal/",
]


@pytest.mark.parametrize("url", STORED)
@pytest.mark.parametrize("kind", ["webhook", "slack", "alertmanager"])
def test_channel_with_a_metadata_url_is_422_and_not_stored(
    clients: Clients, engine: Engine, kind: str, url: str
) -> None:
    with clients.as_role("admin") as admin:
        response = admin.post(
            "/api/v1/notification-channels",
            json={"name": "imds", "kind": kind, "config": {"url": url}},
        )
        body = assert_problem(response, 422)
        assert "SHIPBOARD_OUTBOUND_ALLOW" in str(body["detail"])
        assert admin.get("/api/v1/notification-channels").json()["items"] == []
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM notification_channels")) == 0


def _config(admin: httpx.Client) -> dict[str, Any]:
    return dict(admin.get("/api/v1/environments/staging").json()["config"])


@pytest.mark.parametrize("url", STORED)
def test_healthcheck_with_a_metadata_url_is_422_and_not_stored(clients: Clients, url: str) -> None:
    pipeline = {
        "steps": [{"name": "ship", "stage": "deploy", "run": "true"}],
        "healthcheck": {"url": url},
    }
    with clients.as_role("admin") as admin:
        before = _config(admin)
        response = admin.patch(
            "/api/v1/environments/staging", json={"config": {"pipeline": pipeline}}
        )
        body = assert_problem(response, 422)
        errors = body["errors"]
        assert isinstance(errors, list)
        assert errors[0]["loc"] == ["body", "config", "pipeline", "healthcheck", "url"]
        # PUT, the other way to write a config, refuses it too.
        current = admin.get("/api/v1/environments/staging").json()
        put = admin.put(
            "/api/v1/environments/staging",
            json={
                "domain": current["domain"],
                "config": {**before, "pipeline": pipeline},
                "features": current["features"],
            },
        )
        assert_problem(put, 422)
        assert _config(admin) == before


@pytest.mark.parametrize("url", [*STORED, "file:///etc/passwd"])
def test_scrape_target_with_a_metadata_url_is_422_and_not_stored(
    clients: Clients, url: str
) -> None:
    scrape_config = [{"url": "http://127.0.0.1:9100/metrics"}, {"url": url}]
    with clients.as_role("admin") as admin:
        before = _config(admin)
        response = admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"monitoring": {"scrape": scrape_config}}},
        )
        body = assert_problem(response, 422)
        errors = body["errors"]
        assert isinstance(errors, list)
        # Only the bad entry is named.
        assert [e["loc"] for e in errors] == [["body", "config", "monitoring", "scrape", 1, "url"]]
        assert _config(admin) == before


def test_allow_setting_lets_a_link_local_url_be_stored(clients: Clients, db: Database) -> None:
    allowing = LiveServer(db.url, outbound_allow="169.254.169.254")
    allowing.start()
    try:
        headers = {"Authorization": f"Bearer {clients.tokens['admin']}"}
        with httpx.Client(base_url=allowing.base_url, headers=headers, timeout=30) as admin:
            response = admin.post(
                "/api/v1/notification-channels",
                json={"name": "imds", "kind": "webhook", "config": {"url": f"http://{METADATA}/"}},
            )
            assert response.status_code == 201, response.text
            patched = admin.patch(
                "/api/v1/environments/staging",
                json={"config": {"monitoring": {"scrape": [{"url": f"http://{METADATA}/m"}]}}},
            )
            assert patched.status_code == 200, patched.text
            # What the setting does not name stays refused.
            other = admin.post(
                "/api/v1/notification-channels",
                json={"name": "gcp", "kind": "webhook", "config": {"url": "http://metadata/"}},
            )
            assert_problem(other, 422)
    finally:
        allowing.stop()


# --- refused when sent (both backends) ------------------------------------------------------


def test_webhook_to_a_name_resolving_to_metadata_fails_with_a_recorded_reason(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    port = int(receiver.url.split(":")[2].split("/")[0])
    policy = DEFAULT_POLICY.with_resolver(
        fake_resolver({"evil.example.test": [METADATA], "hooks.example.test": ["127.0.0.1"]})
    )
    with clients.as_role("admin") as admin:
        evil = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": "evil",
                "kind": "webhook",
                "config": {"url": f"http://evil.example.test:{port}/hook"},
            },
        ).json()
        good = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": "good",
                "kind": "webhook",
                "config": {"url": f"http://hooks.example.test:{port}/hook"},
            },
        ).json()
        loopback = admin.post(
            "/api/v1/notification-channels",
            json={"name": "loopback", "kind": "webhook", "config": {"url": receiver.url}},
        ).json()
        for channel in (evil, good, loopback):
            admin.post(f"/api/v1/notification-channels/{channel['id']}/test")
        assert send_due(engine, clients.server.app.state.keyring, outbound=policy) == 3

        def deliveries(channel: dict[str, Any]) -> list[dict[str, Any]]:
            path = f"/api/v1/notification-channels/{channel['id']}/deliveries"
            return list(admin.get(path).json()["items"])

        (refused,) = deliveries(evil)
        (sent_by_name,) = deliveries(good)
        (sent_to_loopback,) = deliveries(loopback)
    (attempt,) = refused["attempts"]
    assert attempt["ok"] is False
    assert attempt["status_code"] is None
    assert "OutboundRefused" in attempt["error"]
    assert f"resolves to {METADATA}" in attempt["error"]
    assert sent_by_name["status"] == "sent"
    assert sent_to_loopback["status"] == "sent"
    assert len(receiver.requests) == 2  # the refused one never connected


def test_healthcheck_resolving_to_metadata_fails_the_deployment_with_the_reason(
    clients: Clients, engine: Engine
) -> None:
    policy = DEFAULT_POLICY.with_resolver(fake_resolver({"app.example.test": [METADATA]}))
    pipeline = {
        "steps": [{"name": "ship", "stage": "deploy", "run": "true"}],
        "healthcheck": {"url": "http://app.example.test/health", "retries": 5, "interval_s": 0.05},
    }
    keyring = clients.server.app.state.keyring
    thread, stop = start_in_thread(Worker(engine, keyring, poll_s=0.05, lease_s=3, outbound=policy))
    try:
        with clients.as_role("admin") as admin:
            patched = admin.patch(
                "/api/v1/environments/staging", json={"config": {"pipeline": pipeline}}
            )
            assert patched.status_code == 200, patched.text
            created = admin.post(
                "/api/v1/deployments",
                json={"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"},
            )
            assert created.status_code == 201, created.text

            def final() -> dict[str, Any] | None:
                detail = admin.get(f"/api/v1/deployments/{created.json()['id']}").json()
                return detail if detail["status"] in ("success", "failed", "rolled_back") else None

            detail = wait_for(final, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert detail["status"] == "failed"
    (analysis,) = detail["analysis"]
    # Refused once, not retried: the policy will not change its mind in 50 ms.
    (attempt,) = analysis["attempts"]
    assert "refused" in attempt["error"]
    assert METADATA in attempt["error"]
    assert METADATA in detail["error_message"]


def test_scheduler_records_a_refused_scrape_target_as_down(
    clients: Clients, engine: Engine
) -> None:
    policy = DEFAULT_POLICY.with_resolver(fake_resolver({"metrics.example.test": [METADATA]}))
    with clients.as_role("admin") as admin:
        patched = admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "monitoring": {"scrape": [{"url": "http://metrics.example.test:9100/metrics"}]}
                }
            },
        )
        assert patched.status_code == 200, patched.text
    scraper = Scraper(engine, outbound=policy)
    assert scraper.scrape_due() == 1
    scraper.finish()
    with engine.connect() as conn:
        up = conn.execute(
            sa.text("SELECT value FROM monitoring_metrics WHERE name = 'shipboard_scrape_up'")
        ).scalars()
        assert list(up) == [0.0]
