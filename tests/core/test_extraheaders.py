"""SHIPBOARD_PROMETHEUS_HEADERS and SHIPBOARD_REMOTE_WRITE_HEADERS: what is taken, what is
refused at start and how it is said, and that a value (perhaps a credential) is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipboard.config import Settings
from shipboard.core import extraheaders
from shipboard.core.redaction import REDACTED, redact
from shipboard.monitoring.forwarding import forwarding_from
from tests.support.cli import shipboard
from tests.support.live import free_port

SECRET = "s3cr3t-tenant-key"


def _parse(text: str) -> tuple[tuple[str, str], ...]:
    return extraheaders.parse(
        text, setting="SHIPBOARD_REMOTE_WRITE_HEADERS", prefix="SHIPBOARD_REMOTE_WRITE"
    )


def test_pairs_and_json_objects_give_the_headers_in_order() -> None:
    assert _parse("X-Scope-OrgID=team-a, THANOS-TENANT = b ,") == (
        ("X-Scope-OrgID", "team-a"),
        ("THANOS-TENANT", "b"),
    )
    assert _parse("X-Api-Key=abc==") == (("X-Api-Key", "abc=="),)  # the first = splits
    assert _parse('{"X-Scope-OrgID": "a|b", "X-Note": "one, two"}') == (
        ("X-Scope-OrgID", "a|b"),
        ("X-Note", "one, two"),
    )
    assert _parse("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            f"Authorization=Bearer {SECRET}",
            "may not set Authorization: use SHIPBOARD_REMOTE_WRITE_BEARER_TOKEN, or "
            "SHIPBOARD_REMOTE_WRITE_USERNAME and SHIPBOARD_REMOTE_WRITE_PASSWORD",
        ),
        (f"content-type={SECRET}", "may not set content-type: Shipboard sets it itself"),
        (f"Content-Encoding={SECRET}", "Shipboard sets it itself"),
        (f"X-Prometheus-Remote-Write-Version={SECRET}", "Shipboard sets it itself"),
        (f"Host={SECRET}", "it comes from SHIPBOARD_REMOTE_WRITE_URL"),
        (f"Content-Length={SECRET}", "Shipboard sets it itself"),
        (f"Transfer-Encoding={SECRET}", "belongs to the HTTP connection"),
        (f"X-Tenant={SECRET}\r\nX-Evil: 1", "X-Tenant's value holds a line break (CR or LF)"),
        (f"X-Tenant=a\n{SECRET}", "line break"),
        (f"X-Tenant={SECRET}\x00", "printable ASCII"),
        (f"X-Tenant={SECRET}é", "printable ASCII"),
        ("X-Tenant=", "not empty"),
        (f"X Tenant={SECRET}", "header 1's name is not a valid header name"),
        (f"X-Tenant:{SECRET}", "header 1 has no '='"),
        (f"a=b,x-a=1,X-A={SECRET}", "names X-A twice"),
        (f'{{"X-Tenant": {SECRET!r}', "not a JSON object"),
        ('{"X-Tenant": 1}', "header 1's value must be a JSON string"),
        (",".join(f"X-{i}=v" for i in range(33)), "at most 32"),
    ],
)
def test_a_bad_header_is_refused_naming_the_setting_not_the_value(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="SHIPBOARD_REMOTE_WRITE_HEADERS") as refused:
        _parse(text)
    assert says in str(refused.value)
    assert SECRET not in str(refused.value)


def test_settings_refuse_bad_headers_without_echoing_them() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(prometheus_headers=f"X-Scope-OrgID={SECRET}\nInjected: 1")
    assert "SHIPBOARD_PROMETHEUS_HEADERS: X-Scope-OrgID's value holds a line break" in str(
        refused.value
    )
    assert SECRET not in str(refused.value)
    with pytest.raises(ValidationError, match="SHIPBOARD_PROMETHEUS_BEARER_TOKEN"):
        Settings(prometheus_headers=f"Authorization=Bearer {SECRET}")


def test_the_settings_reach_the_store_and_the_forwarder_and_are_never_shown() -> None:
    settings = Settings(
        prometheus_url="http://store:8428",
        prometheus_headers=f"X-Scope-OrgID={SECRET}",
        remote_write_url="http://store:8428/api/v1/write",
        remote_write_headers=f'{{"THANOS-TENANT": "{SECRET}"}}',
    )
    store = settings.metrics_store()
    assert store is not None
    assert store.settings.headers == (("X-Scope-OrgID", SECRET),)
    store.close()
    forwarding = forwarding_from(settings)
    assert forwarding is not None
    assert forwarding.headers == (("THANOS-TENANT", SECRET),)
    for shown in (repr(settings), repr(forwarding), repr(store.settings)):
        assert SECRET not in shown
    dumped = redact(settings.model_dump(mode="json"))
    assert dumped["prometheus_headers"] == REDACTED
    assert dumped["remote_write_headers"] == REDACTED
    assert SECRET not in repr(dumped)


def test_serve_with_a_bad_header_setting_is_a_usage_error(tmp_path: Path) -> None:
    result = shipboard(
        "serve",
        "--port",
        str(free_port()),
        env={
            "SHIPBOARD_HOME": str(tmp_path),
            "SHIPBOARD_REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",
            "SHIPBOARD_REMOTE_WRITE_HEADERS": f"Authorization=Basic {SECRET}",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "SHIPBOARD_REMOTE_WRITE_HEADERS may not set Authorization" in result.stderr
    assert "SHIPBOARD_REMOTE_WRITE_BEARER_TOKEN" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
