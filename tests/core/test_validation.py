"""The schemas refuse what the spec does not allow, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.engine import Engine

from shipboard.deployments.schemas import DeploymentCreate, DeploymentLogCreate
from shipboard.environments.schemas import EnvironmentConfig, EnvironmentLimits
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.performance.schemas import PerformanceMetricCreate
from shipboard.security.schemas import (
    SecurityFindingCreate,
    SecurityScanCreate,
    SecurityScanSummary,
)
from tests.support.live import Clients
from tests.support.problems import assert_problem

SCAN_ID = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"

# Models, and the typed dict of a metric point (validated the same way, through a TypeAdapter).
VALID: dict[Any, dict[str, Any]] = {
    DeploymentCreate: {"environment": "staging", "version": "1.2.3", "commit_sha": "ABCDEF1"},
    DeploymentLogCreate: {"level": "info", "message": "built", "source": "build"},
    MonitoringMetricCreate: {
        "name": "http_requests_total",
        "value": 1.5,
        "environment": "production",
        "source": "application",
    },
    PerformanceMetricCreate: {"name": "p95", "environment": "staging", "value": 120, "unit": "ms"},
    SecurityScanCreate: {"type": "sast", "environment": "development", "status": "running"},
    SecurityFindingCreate: {
        "scan_id": SCAN_ID,
        "severity": "high",
        "title": "SQL injection",
        "description": "…",
    },
}

ENUM_FIELDS = [
    (DeploymentCreate, "environment"),
    (DeploymentLogCreate, "level"),
    (MonitoringMetricCreate, "environment"),
    (PerformanceMetricCreate, "environment"),
    (SecurityScanCreate, "type"),
    (SecurityScanCreate, "status"),
    (SecurityScanCreate, "environment"),
    (SecurityFindingCreate, "severity"),
]

TIMESTAMP_FIELDS = [
    (DeploymentLogCreate, "timestamp"),
    (MonitoringMetricCreate, "timestamp"),
    (PerformanceMetricCreate, "timestamp"),
    (SecurityScanCreate, "started_at"),
    (SecurityScanCreate, "completed_at"),
    (SecurityFindingCreate, "resolved_at"),
]


def _validate(model: Any, data: dict[str, Any]) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_validate(data)
    return TypeAdapter(model).validate_python(data)


def _field(parsed: Any, field: str) -> Any:
    return parsed[field] if isinstance(parsed, dict) else getattr(parsed, field)


def _error_locs(model: Any, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        _validate(model, data)
    return [tuple(e["loc"]) for e in info.value.errors()]


@pytest.mark.parametrize("model", list(VALID))
def test_valid_examples_pass(model: Any) -> None:
    _validate(model, VALID[model])


@pytest.mark.parametrize(("model", "field"), ENUM_FIELDS)
def test_every_enum_rejects_an_unknown_value(model: Any, field: str) -> None:
    assert _error_locs(model, {**VALID[model], field: "bogus"}) == [(field,)]


@pytest.mark.parametrize(("model", "field"), TIMESTAMP_FIELDS)
def test_naive_timestamps_are_rejected(model: Any, field: str) -> None:
    assert _error_locs(model, {**VALID[model], field: "2026-11-26T10:00:00"}) == [(field,)]


@pytest.mark.parametrize(("model", "field"), TIMESTAMP_FIELDS)
def test_timestamps_with_offset_are_accepted(model: Any, field: str) -> None:
    parsed = _validate(model, {**VALID[model], field: "2026-11-26T10:00:00+02:00"})
    assert _field(parsed, field).utcoffset() is not None


def test_bad_uuid_is_rejected_with_field_error() -> None:
    assert _error_locs(
        SecurityFindingCreate, {**VALID[SecurityFindingCreate], "scan_id": "not-a-uuid"}
    ) == [("scan_id",)]


def test_commit_sha_is_lowercased_and_bounded() -> None:
    assert DeploymentCreate.model_validate(VALID[DeploymentCreate]).commit_sha == "abcdef1"
    for bad in ("abc12", "g" * 7, "a" * 41):
        assert _error_locs(DeploymentCreate, {**VALID[DeploymentCreate], "commit_sha": bad}) == [
            ("commit_sha",)
        ]


@pytest.mark.parametrize("version", ["", "-1", "1 2", "a" * 129, "v1/2"])
def test_version_pattern(version: str) -> None:
    assert _error_locs(DeploymentCreate, {**VALID[DeploymentCreate], "version": version}) == [
        ("version",)
    ]


def test_urls_must_be_urls() -> None:
    assert _error_locs(DeploymentCreate, {**VALID[DeploymentCreate], "logs_url": "not a url"}) == [
        ("logs_url",)
    ]
    ok = DeploymentCreate.model_validate(
        {**VALID[DeploymentCreate], "logs_url": "https://ci.example/run/1"}
    )
    assert ok.logs_url == "https://ci.example/run/1"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_metric_values_must_be_finite(value: float) -> None:
    assert _error_locs(
        MonitoringMetricCreate, {**VALID[MonitoringMetricCreate], "value": value}
    ) == [("value",)]


def test_metric_names_follow_the_prometheus_pattern() -> None:
    assert _error_locs(
        MonitoringMetricCreate, {**VALID[MonitoringMetricCreate], "name": "9lives"}
    ) == [("name",)]


def test_tags_are_string_to_string() -> None:
    locs = _error_locs(MonitoringMetricCreate, {**VALID[MonitoringMetricCreate], "tags": {"a": 1}})
    assert locs == [("tags", "a")]


def test_limits_are_non_negative() -> None:
    good = {
        "max_concurrent_users": 100,
        "api_rate_limit": 600,
        "storage_quota_gb": 10.5,
        "bandwidth_limit_gb": 100,
        "max_deployment_frequency": 4,
    }
    EnvironmentLimits.model_validate(good)
    for field in good:
        assert _error_locs(EnvironmentLimits, {**good, field: -1}) == [(field,)]


def test_summary_counts_are_non_negative_and_score_bounded() -> None:
    good = {
        "total_findings": 3,
        "critical_findings": 0,
        "high_findings": 1,
        "medium_findings": 1,
        "low_findings": 1,
        "scan_duration_ms": 1200,
        "compliance_score": 91,
    }
    SecurityScanSummary.model_validate(good)
    assert _error_locs(SecurityScanSummary, {**good, "high_findings": -1}) == [("high_findings",)]
    assert _error_locs(SecurityScanSummary, {**good, "compliance_score": 101}) == [
        ("compliance_score",)
    ]


def test_environment_config_checks_urls_and_keeps_unknown_keys() -> None:
    good = {
        "database_url": "postgresql://app:pw@db.internal:5432/app",
        "supabase_url": "https://abc.supabase.co",
        "supabase_anon_key": "anon",
        "clerk_publishable_key": "pk_clerk",
        "stripe_publishable_key": "pk_stripe",
        "resend_api_key": "re_123",
        "api_rate_limit": 600,
        "max_file_size_mb": 25,
        "team_notes": {"owner": "platform"},
    }
    parsed = EnvironmentConfig.model_validate(good)
    assert parsed.model_dump()["team_notes"] == {"owner": "platform"}
    # Shipboard's own keys are typed: a pipeline needs steps.
    assert _error_locs(EnvironmentConfig, {**good, "pipeline": {"steps": []}}) == [
        ("pipeline", "steps")
    ]
    assert _error_locs(EnvironmentConfig, {**good, "supabase_url": "nope"}) == [("supabase_url",)]
    assert _error_locs(EnvironmentConfig, {**good, "max_file_size_mb": -5}) == [
        ("max_file_size_mb",)
    ]


def test_unknown_fields_are_refused_on_create() -> None:
    assert _error_locs(DeploymentCreate, {**VALID[DeploymentCreate], "status": "success"}) == [
        ("status",)
    ]


def test_dates_at_the_edge_of_the_calendar_are_422_not_500(clients: Clients) -> None:
    # Found by the API fuzzer: subtracting the default period from year 1 overflowed.
    with clients.as_role("viewer") as viewer:
        for path, params in (
            ("/api/v1/metrics/series", {"name": "m", "until": "0001-01-01T00:00:00Z"}),
            ("/api/v1/reports/dora", {"until": "0001-01-01T00:53:01Z"}),
        ):
            response = viewer.get(path, params=params)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "out of the supported range" in response.json()["detail"]


def test_nul_is_refused_in_every_text_input_and_changes_nothing(
    clients: Clients, engine: Engine
) -> None:
    """PostgreSQL cannot store U+0000 in text or JSONB: a NUL anywhere a client writes — a JSON
    string or key at any depth, a query parameter, a form field — is a 422 naming it, before any
    route runs, on both backends. A backslash that is itself escaped (``"\\\\u0000"``, the six
    characters) is ordinary text."""
    with clients.as_role("admin") as admin:
        deployment = admin.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"},
        ).json()["id"]
        before = _all_rows(engine)
        refused = [
            admin.post(
                f"/api/v1/deployments/{deployment}/logs",
                json={"logs": [{"level": "info", "message": "a\x00b", "source": "ci"}]},
            ),
            admin.post(
                f"/api/v1/deployments/{deployment}/status",
                json={"status": "failed", "error_message": "boom\x00"},
            ),
            admin.put("/api/v1/environments/staging/secrets/NUL", json={"value": "s3\x00cret"}),
            admin.patch(
                "/api/v1/environments/staging",
                json={"config": {"pipeline": {"steps": [{"env": {"K\x00": "v"}}]}}},
            ),
            # The JSON text spells the escape itself, in either case of its hex digits.
            admin.post(
                f"/api/v1/deployments/{deployment}/logs",
                content=b'{"logs": [{"level": "info", "message": "a\\u0000", "source": "ci"}]}',
                headers={"Content-Type": "application/json"},
            ),
            admin.get("/api/v1/deployments", params={"triggered_by": "a\x00b"}),
            admin.post("/login", data={"username": "a\x00", "password": "x"}),
        ]
        for response in refused:
            assert_problem(response, 422)
            assert "NUL" in response.json()["detail"], response.text
        assert _all_rows(engine) == before
        literal = admin.post(
            f"/api/v1/deployments/{deployment}/logs",
            json={"logs": [{"level": "info", "message": "C:\\u0000 is text", "source": "ci"}]},
        )
        assert literal.status_code == 201, literal.text
        lines = admin.get(f"/api/v1/deployments/{deployment}/logs").json()["items"]
    assert "C:\\u0000 is text" in [line["message"] for line in lines]


def _all_rows(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {
            table: sorted(map(repr, conn.execute(sa.text(f"SELECT * FROM {table}"))))
            for table in ("deployment_logs", "deployment_configs", "environments", "audit_events")
        }


@pytest.mark.parametrize(
    ("body", "has_nul"),
    [
        (b'{"m": "a\\u0000"}', True),
        (b'{"m": "a\\\\u0000"}', False),  # an escaped backslash, then the text u0000
        (b'{"m": "a\\\\\\u0000"}', True),  # an escaped backslash, then the escape
        (b'{"m": "\\\\\\\\u0000"}', False),
        (b'{"m": "a\\u00000"}', True),
        (b'{"m": "a\\u0001"}', False),
        (b'{"m": "a\x00"}', True),
    ],
)
def test_nul_scanner_finds_the_escape_across_any_chunk_boundary(body: bytes, has_nul: bool) -> None:
    """The body streams in chunks of any size: a split anywhere, even inside the escape or a
    run of backslashes, finds the same answer as the whole body at once."""
    from shipboard.core.nulguard import _BodyScanner

    for size in (1, 2, 3, 5, 7, len(body)):
        scanner = _BodyScanner("json")
        found = [scanner.feed(body[i : i + size]) for i in range(0, len(body), size)]
        assert any(found) is has_nul, (size, body)
