"""API fuzzing: schemathesis against the live OpenAPI document of a running server.

Every operation of ``/openapi.json`` is called with generated requests — valid ones (positive)
and ones that break the schema (negative) — as an admin and as a viewer. Each response must:

- not be a 5xx;
- carry a status code the document declares for that operation;
- match the documented response schema and content type;
- be ``application/problem+json`` whenever it is an error (4xx);
- and an invalid request must be refused with a 4xx (``negative_data_rejection``).

CI runs a few examples per operation (SQLite only: the file stays well under three minutes on two
CPUs, while PostgreSQL doubles it and exercises the same request handling; PostgreSQL's own
behaviour is covered by the rest of the suite and by the ``slow`` run here). The ``slow`` variant
runs many more examples per operation, on both backends.

Webhook routes authenticate by HMAC signature instead of a token, so generated requests could
only ever reach the 401 branch; they are fuzzed with valid signatures in
``tests/system/test_fuzz_parsers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from shipboard.monitoring.schemas import Series
from tests.support.databases import Database
from tests.support.live import Clients, LiveServer
from tests.support.problems import assert_problem

PROBLEM_JSON = "application/problem+json"
CI_EXAMPLES = int(os.environ.get("SHIPBOARD_FUZZ_EXAMPLES", "6"))
SLOW_EXAMPLES = int(os.environ.get("SHIPBOARD_FUZZ_SLOW_EXAMPLES", "200"))

# Operations that cannot be fuzzed meaningfully through the generic runner:
EXCLUDED = {
    # A Server-Sent Events stream that only ends when its deployment ends: against a deployment
    # that runs (fuzzing creates some, and no worker finishes them here) it never returns.
    ("GET", "/api/v1/deployments/{deployment_id}/logs/stream"),
    # Authenticated by an HMAC signature over the body, not by the bearer token: every generated
    # request would stop at 401. Fuzzed with valid signatures in tests/system/test_fuzz_parsers.py.
    ("POST", "/api/v1/integrations/github"),
    ("POST", "/api/v1/integrations/gitlab"),
}


PROTOBUF = "application/x-protobuf"


def problem_json_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error answer of the API is an RFC 9457 problem document."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])
        value = content_type[0] if isinstance(content_type, list) else content_type
        if case.operation.path == "/v1/metrics":
            # OTLP/HTTP answers errors with a google.rpc.Status in the request's encoding.
            if value == "application/json":
                body = response.json()
                assert set(body) == {"code", "message", "details"}, body
                assert body["message"], body
            else:
                assert value == PROTOBUF, value
            return None
        assert value.split(";")[0].strip() == PROBLEM_JSON, (
            f"{response.status_code} answered with {value!r}, not {PROBLEM_JSON}"
        )
        body = response.json()
        assert body.get("status") == response.status_code, body
        assert isinstance(body.get("title"), str), body
        assert isinstance(body.get("detail"), str), body
    return None


def series_schema(ctx: Any, response: Any, case: Any) -> bool | None:
    """``Series.points`` is a list of ``[timestamp, value]`` pairs (``prefixItems``, JSON Schema
    2020-12). Schemathesis 4 rewrites ``prefixItems`` into the draft-4 array form of ``items``
    before it validates responses and then rejects its own rewrite ("Invalid Schema Object"), so
    this one operation is validated against its pydantic model instead."""
    if response.status_code == 200:
        Series.model_validate_json(response.content)
    return None


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    problem_json_errors,
]


TUPLE_CHECKS = [c for c in CHECKS if c is not response_schema_conformance] + [series_schema]
TUPLE_RESPONSES = {("GET", "/api/v1/metrics/series")}


@dataclass
class FuzzRun:
    examples: int = 0
    operations: int = 0
    failures: list[str] = field(default_factory=list)


def _operations(schema: Any) -> list[Any]:
    ops = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in EXCLUDED:
            ops.append(operation)
    return ops


def _fuzz_operation(
    run: FuzzRun,
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    checks: list[Callable[..., bool | None]],
    max_examples: int,
) -> None:
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def check(case: Any) -> None:
        run.examples += 1
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=checks, headers=headers)

    check()


def fuzz(clients: Clients, role: str, max_examples: int) -> FuzzRun:
    base_url = clients.server.base_url
    # Building the document takes ~9 s on a loaded machine: past the default 10 s with margin.
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=60)
    headers = {"Authorization": f"Bearer {clients.tokens[role]}"}
    run = FuzzRun()
    operations = _operations(schema)
    documented = {(op.method.upper(), op.path) for op in operations} | EXCLUDED
    assert len(documented) == len(list(schema.get_all_operations())), "every operation seen"
    for operation in operations:
        run.operations += 1
        key = (operation.method.upper(), operation.path)
        checks = TUPLE_CHECKS if key in TUPLE_RESPONSES else CHECKS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(run, operation, mode, base_url, headers, checks, max_examples)
            except Unsatisfiable:
                # Nothing to break: no parameters and no body (e.g. GET /healthz).
                assert mode is GenerationMode.NEGATIVE
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect them all
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                curl = [line.strip() for line in lines if line.strip().startswith("curl ")]
                label = f"{role} {key[0]} {key[1]} [{mode.value}]"
                run.failures.append(f"{label}: {' | '.join(lines[:16] + curl[:1])}")
    return run


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_every_operation_conforms(clients: Clients, role: str) -> None:
    run = fuzz(clients, role, CI_EXAMPLES)
    print(f"{role}: {run.examples} requests over {run.operations} operations")
    assert run.operations >= 60
    assert not run.failures, "\n\n".join(run.failures)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_every_operation_conforms_long(clients: Clients, role: str) -> None:
    run = fuzz(clients, role, SLOW_EXAMPLES)
    print(f"{role}: {run.examples} requests over {run.operations} operations")
    assert not run.failures, "\n\n".join(run.failures)


# --- what the fuzzing found: one test per fix ----------------------------------------------------


def test_the_document_says_errors_are_problem_json_and_bodies_may_be_400_or_413(
    server: LiveServer,
) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=60).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if status[0] in "45" and path == "/v1/metrics":
                    # OTLP/HTTP: a google.rpc.Status in the request's encoding.
                    assert set(response["content"]) == {"application/json", PROTOBUF}, status
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Status"}
                elif status[0] in "45":
                    assert list(response["content"]) == [PROBLEM_JSON], (method, path, status)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_a_secret_body_that_is_not_utf8_is_422_not_500(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.put(
            "/api/v1/environments/staging/secrets/KEY",
            content=b'{"value": "\xff\xfe"}',
            headers={"content-type": "application/json"},
        )
    assert_problem(response, 422)


@pytest.mark.parametrize("body", [b'""', b'"abc"', b"[]", b"[1]", b"null", b"1"])
def test_an_otlp_json_body_that_is_not_an_object_is_400(clients: Clients, body: bytes) -> None:
    with clients.as_role("service") as client:
        response = client.post(
            "/v1/metrics", content=body, headers={"content-type": "application/json"}
        )
    # OTLP/HTTP answers a JSON request's error with a JSON google.rpc.Status.
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 3  # INVALID_ARGUMENT
    assert "object" in response.json()["message"]


SILENCE = {
    "starts_at": "2030-01-01T00:00:00Z",
    "ends_at": "2031-01-01T00:00:00Z",
    "matchers": [{"name": "alertname", "value": "x"}],
    "comment": "maintenance",
}


def test_nul_characters_never_become_a_500(clients: Clients, db: Database) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000 (SQLite can): refused on both backends
    alike (``core.nulguard``), a 422, not a 500."""
    bodies = [
        ("/api/v1/silences", {**SILENCE, "comment": "a\u0000b"}),
        ("/api/v1/silences", {**SILENCE, "matchers": [{"name": "a\u0000", "value": "b"}]}),
    ]
    with clients.as_role("admin") as admin:
        for path, body in bodies:
            response = admin.post(path, json=body)
            assert_problem(response, 422)
            assert "NUL" in response.json()["detail"]


def test_a_scan_target_with_a_nul_character_is_422(clients: Clients) -> None:
    with clients.as_role("deployer") as deployer:
        response = deployer.post(
            "/api/v1/security/scans",
            json={"environment": "staging", "type": "sast", "target": "src\u0000/x"},
        )
    assert_problem(response, 422)


def test_numbers_are_not_timestamps(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        for path in ("/api/v1/audit?until=0", "/api/v1/metrics/series?name=x&until=3588"):
            assert_problem(admin.get(path), 422)
        assert admin.get("/api/v1/audit?until=2030-01-01T00:00:00Z").status_code == 200


def test_values_round_trip_exactly_and_the_largest_doubles_stay_finite(
    clients: Clients, engine: Engine
) -> None:
    """PostgreSQL's float8 → numeric cast kept 15 digits: 0.1 + 0.2 came back as 0.3 and the
    largest doubles rounded past the float range, read back as infinity (JSON null)."""
    values = [
        0.1 + 0.2,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        5e-324,
        123456789.12345679,
    ]
    now = datetime.now(UTC).isoformat()
    with clients.as_role("service") as service:
        points = [
            {
                "name": "exact",
                "value": v,
                "environment": "staging",
                "timestamp": now,
                "source": "application",
            }
            for v in values
        ]
        assert service.post("/api/v1/metrics", json={"metrics": points}).status_code == 200
        results = [
            {"name": f"exact{i}", "value": v, "environment": "staging", "unit": "ms"}
            for i, v in enumerate(values)
        ]
        response = service.post("/api/v1/performance/metrics", json={"metrics": results})
        assert response.status_code == 201, response.text
        assert [v["value"] for v in response.json()["verdicts"]] == values
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT value FROM monitoring_metrics WHERE name = 'exact'")
        ).scalars()
        assert sorted(float(v) for v in stored) == sorted(values)
        kept = conn.execute(
            sa.text("SELECT value FROM performance_metrics WHERE name LIKE 'exact%'")
        ).scalars()
        assert sorted(float(v) for v in kept) == sorted(values)


def test_a_monitoring_report_over_the_largest_doubles_is_finite(clients: Clients) -> None:
    now = datetime.now(UTC)
    points = [
        {
            "name": "huge",
            "value": v,
            "environment": "staging",
            "timestamp": now.isoformat(),
            "source": "application",
        }
        for v in (1.7976931348623157e308, 1.7976931348623157e308, -1.7976931348623157e308)
    ]
    with clients.as_role("service") as service:
        assert service.post("/api/v1/metrics", json={"metrics": points}).status_code == 200
    with clients.as_role("viewer") as viewer:
        report = viewer.get("/api/v1/reports/monitoring?environment=staging")
        assert report.status_code == 200, report.text
        (summary,) = [m for m in report.json()["metrics"] if m["name"] == "huge"]
        for key in ("min", "max", "avg", "p95"):
            assert isinstance(summary[key], float), summary
        series = viewer.get("/api/v1/metrics/series?name=huge&environment=staging&agg=avg")
        assert series.status_code == 200, series.text
        assert all(isinstance(value, float) for _, value in series.json()["points"])


def test_timestamps_with_offsets_past_15_59_are_stored(clients: Clients) -> None:
    """Python and ISO 8601 allow offsets to ±23:59, PostgreSQL to ±15:59: stored in UTC."""
    moment = (datetime.now(UTC) - timedelta(hours=1)).astimezone(
        timezone(timedelta(hours=-16, minutes=-3))
    )
    point = {
        "name": "offset",
        "value": 1,
        "environment": "staging",
        "timestamp": moment.isoformat(),
        "source": "application",
    }
    with clients.as_role("service") as service:
        response = service.post("/api/v1/metrics", json={"metrics": [point]})
    assert response.status_code == 200, response.text


def test_booleans_are_not_measurements(clients: Clients) -> None:
    result = {"name": "b", "value": 1.0, "environment": "staging", "unit": "ms"}
    point = {"name": "b", "value": 1.0, "environment": "staging", "source": "x"}
    with clients.as_role("service") as service:
        for changed in ({"benchmark": False}, {"threshold": True}, {"value": True}):
            response = service.post(
                "/api/v1/performance/metrics", json={"metrics": [{**result, **changed}]}
            )
            assert_problem(response, 422)
        response = service.post("/api/v1/metrics", json={"metrics": [{**point, "value": False}]})
        assert_problem(response, 422)
