"""What the session's own red-team pass found beyond issue 18's list, as tests (see
docs/security.md, "Red-team pass"). Each failed before its fix."""

from __future__ import annotations

import gzip
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.netguard import DEFAULT_POLICY
from shipboard.notifications import senders
from tests.support.dns import METADATA, fake_resolver
from tests.support.live import Clients
from tests.support.web import browser, login, set_password

# Valid ISO 8601 whose UTC is before year 1 or after year 9999.
BEFORE_YEAR_ONE = "0001-01-01T00:00:00+14:00"
AFTER_YEAR_9999 = "9999-12-31T23:59:59-14:00"


def _out_of_range(response: httpx.Response) -> None:
    assert response.status_code == 422, (response.request.url, response.text)


def test_times_whose_utc_leaves_the_calendar_are_422_not_500(
    clients: Clients, engine: Engine
) -> None:
    """A valid time with an offset can convert to a UTC before year 1 or after 9999; binding it
    as a UTC column overflowed (500) on query filters, API bodies and page filters alike."""
    with clients.as_role("admin") as admin:
        for path, params in (
            ("/api/v1/deployments", {"since": BEFORE_YEAR_ONE}),
            ("/api/v1/audit", {"since": AFTER_YEAR_9999}),
            ("/api/v1/audit", {"until": BEFORE_YEAR_ONE}),
            ("/api/v1/performance/metrics", {"since": BEFORE_YEAR_ONE}),
        ):
            response = admin.get(path, params=params)
            _out_of_range(response)
            assert response.headers["content-type"] == "application/problem+json"
        created = admin.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "alertname", "value": "x"}],
                "starts_at": BEFORE_YEAR_ONE,
                "ends_at": AFTER_YEAR_9999,
                "comment": "edge of the calendar",
            },
        )
        _out_of_range(created)
        assert "starts_at" in created.text
        assert "UTC" in created.text
        assert admin.get("/api/v1/silences").json()["items"] == []
    # The pages parse their own filters; the same value is a 422 page there too.
    set_password(engine, "viewer-user")
    with browser(clients.server) as page:
        login(page, "viewer-user")
        response = page.get("/deployments", params={"since": BEFORE_YEAR_ONE})
        _out_of_range(response)
        assert response.headers["content-type"].startswith("text/html")


def test_every_html_response_has_the_pages_csp_and_is_not_stored(
    clients: Clients, engine: Engine
) -> None:
    """HTML leaves through more doors than the page renderer: the reports' printable
    ``format=html`` on the API was served on the cookie's origin with no CSP or nosniff, and no
    page said ``no-store``, so the TOTP secret shown while enrolling, findings and configuration
    stayed in the browser's cache after sign-out."""
    set_password(engine, "admin-user")
    with browser(clients.server) as page, clients.as_role("viewer") as viewer:
        login(page, "admin-user")
        enrolling = page.post(
            "/account/totp",
            data={"csrf_token": _csrf(page), "password": "correct horse battery"},
            follow_redirects=True,
        )
        assert "totp-secret" in enrolling.text
        responses = [
            enrolling,
            page.get("/"),
            page.get("/deployments"),
            page.get("/no-such-page"),
            page.get("/login"),
            page.get("/docs"),
            viewer.get(
                "/api/v1/reports/security", params={"environment": "staging", "format": "html"}
            ),
            viewer.get(
                "/api/v1/reports/monitoring", params={"environment": "staging", "format": "html"}
            ),
            viewer.get("/api/v1/reports/dora", params={"environment": "staging", "format": "html"}),
            viewer.get(
                "/api/v1/reports/performance", params={"environment": "staging", "format": "html"}
            ),
        ]
    for response in responses:
        where = str(response.request.url)
        assert response.headers["content-type"].startswith("text/html"), where
        assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), (
            where
        )
        assert "script-src 'self'" in response.headers["content-security-policy"], where
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert response.headers.get("cache-control") == "no-store", where


def _csrf(page: httpx.Client) -> str:
    account = page.get("/account")
    match = re.search(r'name="csrf_token" value="([^"]+)"', account.text)
    assert match, account.text
    return match.group(1)


@pytest.mark.parametrize("host", [METADATA, "::ffff:169.254.169.254", "metadata.google.internal"])
def test_an_email_channel_to_a_metadata_host_is_422_and_not_stored(
    clients: Clients, engine: Engine, host: str
) -> None:
    """The outbound policy covered every URL a channel holds, but an email channel's SMTP host
    was stored and connected to unchecked."""
    with clients.as_role("admin") as admin:
        response = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": "mail",
                "kind": "email",
                "config": {"host": host, "port": 80, "from": "a@example.test", "to": "b@x.test"},
            },
        )
        assert response.status_code == 422, response.text
        assert "config.host" in response.json()["detail"]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM notification_channels")) == 0


def test_email_goes_only_to_an_address_the_policy_checked(smtp: tuple[int, list[Any]]) -> None:
    """A name that resolves (or re-resolves) to the metadata address is refused when the mail
    is sent; an allowed one is connected to at the very address that was checked (the names
    exist only in the injected resolver)."""
    port, received = smtp
    policy = DEFAULT_POLICY.with_resolver(
        fake_resolver({"rebind.example.test": [METADATA], "mail.example.test": ["127.0.0.1"]})
    )
    config = {"port": port, "from": "shipboard@example.test", "to": "ops@example.test"}
    refused = senders.send(
        "email", {**config, "host": "rebind.example.test"}, {}, {"message": "hi"}, outbound=policy
    )
    assert refused[0] is False
    assert "OutboundRefused" in str(refused[2])
    assert METADATA in str(refused[2])
    sent = senders.send(
        "email", {**config, "host": "mail.example.test"}, {}, {"message": "hi"}, outbound=policy
    )
    assert sent == (True, None, None)
    assert [envelope.rcpt_tos for envelope in received] == [["ops@example.test"]]


EMAIL = {"host": "127.0.0.1", "port": 25, "from": "a@example.test", "to": "b@example.test"}


@pytest.mark.parametrize(
    "change",
    [
        {"to": "ops@example.test\r\nBcc: attacker@example.test"},
        {"to": ["ops@example.test", {"not": "an address"}]},
        {"from": "a@example.test\nSubject: spoofed"},
        {"host": "127.0.0.1\r\nRCPT TO:<attacker@example.test>"},
        {"username": ["admin"]},
        {"port": True},
        {"starttls": "yes"},
    ],
)
def test_email_channel_fields_that_would_inject_or_fail_at_send_are_422(
    clients: Clients, engine: Engine, change: dict[str, Any]
) -> None:
    """An email channel's fields were checked only for presence: a CR/LF in `to` or `from`
    (an extra Bcc: header), in `host`, or a list where text belongs was stored, and failed or
    injected only when a mail went out."""
    with clients.as_role("admin") as admin:
        good = admin.post(
            "/api/v1/notification-channels",
            json={"name": "mail-ok", "kind": "email", "config": EMAIL},
        )
        assert good.status_code == 201, good.text
        response = admin.post(
            "/api/v1/notification-channels",
            json={"name": "mail-bad", "kind": "email", "config": {**EMAIL, **change}},
        )
        assert response.status_code == 422, response.text
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM notification_channels")) == 1


def test_a_stored_header_injection_fails_its_delivery_not_the_sender() -> None:
    ok, status, error = senders.send(
        "email",
        {**EMAIL, "to": "ops@example.test\r\nBcc: attacker@example.test"},
        {},
        {"message": "hi"},
    )
    assert (ok, status) == (False, None)
    assert "ValueError" in str(error)


@pytest.mark.parametrize(
    "number", ["123456789012345678901234567890", "-9223372036854775809", "9" * 5000]
)
def test_integers_beyond_64_bits_in_a_json_body_are_422_not_500(
    clients: Clients, engine: Engine, number: str
) -> None:
    """Found by schemathesis: an integer past 64 bits in log ``metadata`` parsed, then broke the
    JSON column's serialiser (500). Every JSON body is checked before it is parsed."""
    with clients.as_role("admin") as admin:
        deployment = admin.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"},
        ).json()["id"]
        body = (
            '{"logs": [{"level": "info", "message": "m", "source": "ci", '
            f'"metadata": {{"n": {number}, "ok": [1.5e300, 18446744073709551615]}}}}]}}'
        )
        response = admin.post(
            f"/api/v1/deployments/{deployment}/logs",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert "64-bit" in response.json()["detail"]
        fits = body.replace(number, "9223372036854775807")
        accepted = admin.post(
            f"/api/v1/deployments/{deployment}/logs",
            content=fits,
            headers={"Content-Type": "application/json"},
        )
        assert accepted.status_code < 300, accepted.text


def test_a_gzip_otlp_json_body_gets_the_json_shape_check_once_inflated(clients: Clients) -> None:
    """JSON bodies are checked for size in values and depth on the wire, before parsing; an
    OTLP export with ``Content-Encoding: gzip`` was inflated and parsed unchecked: 58 KB of gzip
    holding 20 million empty objects took a service token's request to 2.7 GB and 30+ s."""
    many = b'{"resourceMetrics":[' + b"{}," * 600_000 + b"{}]}"
    deep = b'{"resourceMetrics":' + b"[" * 300 + b"]" * 300 + b"}"
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with clients.as_role("service") as service:
        too_many = service.post("/v1/metrics", content=gzip.compress(many), headers=headers)
        assert too_many.status_code == 413, too_many.text
        too_deep = service.post("/v1/metrics", content=gzip.compress(deep), headers=headers)
        assert too_deep.status_code == 422, too_deep.text
        assert "nested deeper" in too_deep.text
