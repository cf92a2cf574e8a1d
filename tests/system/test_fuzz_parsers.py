"""Parser fuzzing: every importer, with arbitrary input and with mutated real files.

A parser given anything must either read it or refuse it with its own error and a reason
(``ImportFailed`` for scan reports and benchmark files, ``InvalidInput`` for webhook payloads,
a protobuf ``DecodeError``/``ParseError`` for OTLP) — never any other exception. Through the API,
a refused input is a 4xx problem and leaves no row behind. Hostile bodies (a gzip bomb, a 1-GB
stream, 100,000 nested brackets, invalid UTF-8) are refused early on every JSON and import route.

The mutations start from the real files of ``tests/fixtures/`` and drop keys, change types, nest
values, and truncate the serialized bytes. ``tests/performance/test_importers.py`` already feeds
``parse_results`` arbitrary bytes and random structures; here it gets mutated real files.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import math
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from sqlalchemy.engine import Engine

from shipboard.core.errors import InvalidInput
from shipboard.integrations import mapping
from shipboard.monitoring import otlp, temporality
from shipboard.performance.importers import ImportFailed as PerfImportFailed
from shipboard.performance.importers import parse_results
from shipboard.security.importers import ImportFailed, ParsedReport, parse_report
from tests.support.live import Clients, LiveServer
from tests.support.paths import FIXTURES

SECURITY = sorted(p for p in (FIXTURES / "security").rglob("*") if p.suffix in {".json", ".sarif"})
PERFORMANCE = sorted((FIXTURES / "metrics" / "pytest-benchmark").rglob("*.json"))[:4] + sorted(
    (FIXTURES / "metrics" / "k6").glob("*.json")
)
OTLP_JSON = sorted((FIXTURES / "metrics" / "otlp").glob("*.json"))
GITHUB = sorted((FIXTURES / "integrations" / "github").glob("*.json"))
GITLAB = sorted((FIXTURES / "integrations" / "gitlab").glob("*.json"))
SECRET = "fuzzing-secret-of-the-webhooks"
EXAMPLES = int(os.environ.get("SHIPBOARD_FUZZ_PARSER_EXAMPLES", "100"))
API_EXAMPLES = int(os.environ.get("SHIPBOARD_FUZZ_PARSER_API_EXAMPLES", "40"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
FUZZ_API = settings(FUZZ, max_examples=API_EXAMPLES)


def _load(path: Path) -> Any:
    return json.loads(path.read_bytes())


_DOCS: dict[Path, Any] = {}


def _doc(path: Path) -> Any:
    if path not in _DOCS:
        _DOCS[path] = _load(path)
    return json.loads(json.dumps(_DOCS[path]))  # a fresh copy to mutate


# --- mutations ----------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "\x00", "\ud7ff", "2020-13-45T99:00:00Z", "NaN", "-1", "9" * 40])
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate_once(data: st.DataObject, doc: Any) -> Any:
    paths = list(_paths(doc))
    path = data.draw(st.sampled_from(paths), label="path")
    operation = data.draw(st.sampled_from(["drop", "replace", "nest", "empty", "dup"]))
    if not path:
        if operation == "nest":
            return [doc] if data.draw(st.booleans()) else {"x": doc}
        return data.draw(JSONISH) if operation in {"replace", "drop"} else doc
    *parents, last = path
    parent = doc
    for part in parents:
        parent = parent[part]
    if operation == "drop":
        del parent[last]
    elif operation == "replace":
        parent[last] = data.draw(JSONISH, label="value")
    elif operation == "nest":
        parent[last] = [parent[last]] if data.draw(st.booleans()) else {"v": parent[last]}
    elif operation == "empty":
        parent[last] = type(parent[last])() if isinstance(parent[last], list | dict | str) else 0
    elif isinstance(parent, list):
        parent.append(parent[last])
    return doc


def mutated(data: st.DataObject, doc: Any) -> bytes:
    """The document after one to four mutations, serialized, perhaps truncated."""
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        doc = _mutate_once(data, doc)
    raw = json.dumps(doc).encode()
    if data.draw(st.integers(0, 4), label="truncate?") == 0:
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut")]
    return raw


# --- security reports (pure) --------------------------------------------------------------------


def _report_or_refusal(raw: bytes, **kwargs: str) -> ParsedReport | None:
    try:
        report = parse_report(raw, **kwargs)
    except ImportFailed as exc:
        reason = str(exc)
        assert reason, "ImportFailed without a reason"
        return None
    for finding in report.findings:
        assert isinstance(finding.title, str)
        assert finding.severity in {"low", "medium", "high", "critical"}
    return report


@FUZZ
@given(st.binary(max_size=3000))
def test_security_reports_arbitrary_bytes(raw: bytes) -> None:
    _report_or_refusal(raw)


@FUZZ
@given(JSONISH)
def test_security_reports_arbitrary_json(doc: Any) -> None:
    _report_or_refusal(json.dumps(doc).encode())


@pytest.mark.parametrize("path", SECURITY, ids=lambda p: p.name)
@settings(FUZZ, max_examples=max(EXAMPLES // 4, 10))
@given(data=st.data())
def test_security_reports_mutated(path: Path, data: st.DataObject) -> None:
    _report_or_refusal(mutated(data, _doc(path)))


# --- benchmark results (pure; arbitrary input is in performance/test_importers.py) -------------


@pytest.mark.parametrize("path", PERFORMANCE, ids=lambda p: p.name[:40])
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
@given(data=st.data())
def test_benchmark_files_mutated(path: Path, data: st.DataObject) -> None:
    try:
        parsed = parse_results(mutated(data, _doc(path)), version="1.0")
    except PerfImportFailed as exc:
        reason = str(exc)
        assert reason
    else:
        assert parsed.results


# --- OTLP (pure) --------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KNOWN = {"development", "staging", "production"}


def _otlp_doc(path: Path) -> Any:
    """The example with a known environment on each resource (an export without one is
    refused before its points are read, which would leave the point checks unfuzzed)."""
    doc = _doc(path)
    for resource_metrics in doc.get("resourceMetrics", []):
        resource_metrics.setdefault("resource", {}).setdefault("attributes", []).append(
            {"key": "deployment.environment.name", "value": {"stringValue": "staging"}}
        )
    return doc


def _otlp_protobuf(path: Path) -> bytes:
    message = ExportMetricsServiceRequest()
    json_format.ParseDict(_otlp_doc(path), message, ignore_unknown_fields=True)
    return message.SerializeToString()


def _convert(message: ExportMetricsServiceRequest) -> None:
    converted = otlp.convert(message, known_environments=KNOWN, now=NOW)
    rows = list(converted.rows)
    for pending in converted.pending:  # a cumulative point twice: itself, then a zero increment
        rows += pending.rows(pending.reading)
        previous = (pending.start_ns, pending.time_ns - 1, pending.reading)
        again = temporality.increment(
            pending.kind, pending.reading, pending.start_ns, pending.time_ns, previous
        )
        rows += pending.rows(again) if again is not None else []
    for row in rows:
        assert row["environment"] in KNOWN
        assert isinstance(row["value"], float)
        assert math.isfinite(row["value"])
    otlp.response(converted)


@FUZZ
@given(st.binary(max_size=2000))
def test_otlp_protobuf_arbitrary_bytes(raw: bytes) -> None:
    message = ExportMetricsServiceRequest()
    try:
        message.ParseFromString(raw)
    except DecodeError:
        return
    _convert(message)


@pytest.mark.parametrize("path", OTLP_JSON, ids=lambda p: p.name[:40])
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
@given(data=st.data())
def test_otlp_protobuf_mutated_bytes(path: Path, data: st.DataObject) -> None:
    raw = bytearray(_otlp_protobuf(path))
    for _ in range(data.draw(st.integers(1, 6))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    message = ExportMetricsServiceRequest()
    try:
        message.ParseFromString(bytes(raw))
    except DecodeError:
        return
    _convert(message)


@pytest.mark.parametrize("path", OTLP_JSON, ids=lambda p: p.name[:40])
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
@given(data=st.data())
def test_otlp_json_mutated(path: Path, data: st.DataObject) -> None:
    message = ExportMetricsServiceRequest()
    try:
        document = json.loads(mutated(data, _otlp_doc(path)))
        if not isinstance(document, dict):
            return  # the route refuses a non-object before the converter sees it
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError, RecursionError):
        return
    _convert(message)


U64 = st.integers(0, 2**64 - 1).map(str)
# Protobuf JSON writes NaN and the infinities as strings.
DOUBLE = st.floats().map(lambda f: f if math.isfinite(f) else str(f))
OTLP_TEXT = st.text(max_size=12) | st.sampled_from(["", "\x00", "a\x00b", "x" * 300, "Staging"])
# Values for the fields of a data point that the protobuf accepts but the OTLP data model may
# not: the points are well-formed messages, so only the converter and the database can refuse.
POINT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "bucketCounts": st.lists(U64 | st.integers(0, 5).map(str), max_size=6),
    "explicitBounds": st.lists(DOUBLE | st.integers(-5, 5), max_size=5),
    "count": U64 | st.integers(0, 5).map(str),
    "sum": DOUBLE,
    "min": DOUBLE,
    "max": DOUBLE,
    "asDouble": DOUBLE,
    "asInt": st.integers(-(2**63), 2**63 - 1).map(str),
    "timeUnixNano": U64,
    "startTimeUnixNano": U64,
    "flags": st.integers(0, 2**32 - 1),
    "scale": st.integers(-(2**31), 2**31 - 1) | st.integers(-12, 22),
    "zeroCount": U64 | st.integers(0, 5).map(str),
    "zeroThreshold": DOUBLE,
    "positive": st.fixed_dictionaries(
        {"offset": st.integers(-(2**31), 2**31 - 1) | st.integers(-3, 3)},
        optional={"bucketCounts": st.lists(U64 | st.integers(0, 5).map(str), max_size=6)},
    ),
    "attributes": st.lists(
        st.fixed_dictionaries(
            {"key": OTLP_TEXT, "value": st.fixed_dictionaries({"stringValue": OTLP_TEXT})}
        ),
        max_size=3,
    ),
}


def _drawn_points(data: st.DataObject, path: Path) -> dict[str, Any]:
    """A real example whose data points (and metric names) get fields drawn from POINT_FIELDS."""
    doc = _otlp_doc(path)
    metrics = [
        metric
        for resource_metrics in doc["resourceMetrics"]
        for scope_metrics in resource_metrics.get("scopeMetrics", [])
        for metric in scope_metrics.get("metrics", [])
    ]
    for _ in range(data.draw(st.integers(1, 5), label="changes")):
        metric = data.draw(st.sampled_from(metrics), label="metric")
        if data.draw(st.integers(0, 9), label="rename?") == 0:
            metric["name"] = data.draw(OTLP_TEXT, label="name")
            continue
        kind = next(
            k
            for k in ("sum", "gauge", "histogram", "exponentialHistogram", "summary")
            if k in metric
        )
        if kind != "gauge" and data.draw(st.integers(0, 2), label="temporality?") == 0:
            # Cumulative points go through the series' stored state (temporality.py).
            metric[kind]["aggregationTemporality"] = data.draw(
                st.sampled_from([0, 1, 2, 2, "AGGREGATION_TEMPORALITY_CUMULATIVE", 7]),
                label="temporality",
            )
        points = metric[kind]["dataPoints"]
        if data.draw(st.booleans(), label="another point?"):
            points.append(json.loads(json.dumps(points[0])))
        point = data.draw(st.sampled_from(points), label="point")
        name = data.draw(st.sampled_from(sorted(POINT_FIELDS)), label="field")
        point[name] = data.draw(POINT_FIELDS[name], label=name)
    return doc


@pytest.mark.parametrize("path", OTLP_JSON, ids=lambda p: p.name[:40])
@settings(FUZZ, max_examples=EXAMPLES * 3)
@given(data=st.data())
def test_otlp_points_with_drawn_fields_convert_or_are_rejected(
    path: Path, data: st.DataObject
) -> None:
    message = ExportMetricsServiceRequest()
    try:
        json_format.ParseDict(_drawn_points(data, path), message, ignore_unknown_fields=True)
    except json_format.ParseError:
        return
    _convert(message)


# --- GitHub / GitLab payloads (pure) ------------------------------------------------------------

MAPPING_SETTINGS = mapping.Settings(
    environments=["development", "staging", "production"],
    env_map={"github-pages": "staging"},
    deploy_workflow="*",
    workflow_environment="staging",
)
GITHUB_EVENTS = {
    "deployment.created.payload.json": "deployment",
    "deployment_review.requested.payload.json": "deployment_review",
    "deployment_status.created.gh-pages.payload.json": "deployment_status",
    "deployment_status.created.payload.json": "deployment_status",
    "workflow_run.completed.payload.json": "workflow_run",
}


def _meaning(read: Any, event: str, raw: bytes) -> None:
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return  # the service answers 400 before mapping (checked through the API below)
    if not isinstance(payload, dict):
        return
    try:
        meaning = read(event, payload, MAPPING_SETTINGS)
    except InvalidInput as exc:
        reason = exc.detail
        assert reason
        return
    assert isinstance(meaning, mapping.Ignore | mapping.Ping | mapping.DeploymentEvent)


@pytest.mark.parametrize("path", GITHUB + GITLAB, ids=lambda p: p.name[:40])
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
@given(data=st.data())
def test_webhook_payloads_mutated(path: Path, data: st.DataObject) -> None:
    raw = mutated(data, _doc(path))
    if path in GITHUB:
        _meaning(mapping.github_event, GITHUB_EVENTS[path.name], raw)
    else:
        _meaning(mapping.gitlab_event, "Deployment Hook", raw)


# --- through the API: refused means a 4xx problem and no rows -----------------------------------

COUNTED = (
    "security_scans",
    "security_findings",
    "finding_identities",
    "finding_occurrences",
    "performance_metrics",
    "performance_regressions",
    "monitoring_metrics",
    "deployment_runs",
    "integration_deployments",
)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in COUNTED
        }


def _assert_error_body(response: httpx.Response, *, otlp_binary: bool | None = None) -> None:
    """problem+json naming what is wrong; on OTLP routes a google.rpc.Status in the request's
    encoding (``otlp_binary``: protobuf or JSON) naming it."""
    content_type = response.headers["content-type"]
    if otlp_binary is None:
        assert content_type.startswith("application/problem+json"), response.text
        assert response.json()["detail"], response.text
    elif otlp_binary:
        assert content_type == "application/x-protobuf", response.text
        assert Status.FromString(response.content).message
    else:
        assert content_type == "application/json", response.text
        assert response.json()["message"], response.text


def _assert_refused_cleanly(
    response: httpx.Response,
    before: dict[str, int],
    after: dict[str, int],
    *,
    otlp_binary: bool | None = None,
) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_error_body(response, otlp_binary=otlp_binary)
        assert before == after, f"a refused request left rows: {before} -> {after}"


@settings(FUZZ_API)
@given(data=st.data())
def test_security_import_refusals_leave_no_rows(
    clients: Clients, engine: Engine, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(SECURITY), label="fixture")
    raw = mutated(data, _doc(path))
    before = _counts(engine)
    with clients.as_role("deployer") as client:
        response = client.post(
            "/api/v1/security/scans/import",
            data={"environment": "staging"},
            files={"file": (path.name, raw, "application/json")},
        )
    _assert_refused_cleanly(response, before, _counts(engine))


@settings(FUZZ_API)
@given(data=st.data())
def test_benchmark_import_refusals_leave_no_rows(
    clients: Clients, engine: Engine, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(PERFORMANCE), label="fixture")
    raw = mutated(data, _doc(path))
    before = _counts(engine)
    with clients.as_role("deployer") as client:
        response = client.post(
            "/api/v1/performance/import",
            data={"environment": "staging", "version": "1.0.0"},
            files={"file": (path.name, raw, "application/json")},
        )
    _assert_refused_cleanly(response, before, _counts(engine))


@settings(FUZZ_API)
@given(data=st.data())
def test_otlp_refusals_leave_no_rows(clients: Clients, engine: Engine, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(OTLP_JSON), label="fixture")
    binary = data.draw(st.booleans(), label="protobuf")
    if data.draw(st.booleans(), label="drawn point fields"):
        message = ExportMetricsServiceRequest()
        try:
            json_format.ParseDict(_drawn_points(data, path), message, ignore_unknown_fields=True)
        except json_format.ParseError:
            return
        body, content_type = message.SerializeToString(), "application/x-protobuf"
    elif binary:
        raw = bytearray(_otlp_protobuf(path))
        for _ in range(data.draw(st.integers(0, 4), label="flips")):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
        body, content_type = bytes(raw), "application/x-protobuf"
    else:
        body, content_type = mutated(data, _otlp_doc(path)), "application/json"
    before = _counts(engine)
    with clients.as_role("service") as client:
        response = client.post("/v1/metrics", content=body, headers={"content-type": content_type})
    _assert_refused_cleanly(
        response, before, _counts(engine), otlp_binary=content_type == "application/x-protobuf"
    )


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def webhooks(clients: Clients) -> Clients:
    with clients.as_role("admin") as admin:
        for kind in ("github", "gitlab"):
            body = {"secret": SECRET, "env_map": {"github-pages": "staging"}}
            response = admin.put(f"/api/v1/integrations/{kind}", json=body)
            assert response.status_code == 200, response.text
    return clients


@settings(FUZZ_API)
@given(data=st.data())
def test_signed_webhooks_with_mutated_payloads(
    webhooks: Clients, engine: Engine, data: st.DataObject
) -> None:
    """Valid signatures over mutated payloads: the parser behind the signature check."""
    path = data.draw(st.sampled_from(GITHUB + GITLAB), label="fixture")
    body = mutated(data, _doc(path))
    if path in GITHUB:
        url, headers = (
            "/api/v1/integrations/github",
            {
                "X-GitHub-Event": GITHUB_EVENTS[path.name],
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": _sign(body),
            },
        )
    else:
        url, headers = (
            "/api/v1/integrations/gitlab",
            {
                "X-Gitlab-Event": "Deployment Hook",
                "X-Gitlab-Event-UUID": str(uuid.uuid4()),
                "X-Gitlab-Token": SECRET,
            },
        )
    before = _counts(engine)
    response = httpx.post(
        webhooks.server.base_url + url,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code in {200, 201, 202, 400, 409, 422}, response.text
    if response.status_code >= 400:
        assert before == _counts(engine), "a refused webhook left rows"


# --- hostile bodies, refused early --------------------------------------------------------------

JSON_ROUTES = [
    ("service", "POST", "/api/v1/metrics"),
    ("deployer", "POST", "/api/v1/deployments"),
    ("service", "POST", "/api/v1/performance/metrics"),
    ("admin", "PUT", "/api/v1/environments/staging/secrets/KEY"),
    ("admin", "PATCH", "/api/v1/environments/staging"),
    ("admin", "POST", "/api/v1/alert-rules"),
    ("service", "POST", "/v1/metrics"),
]
IMPORT_ROUTES = ["/api/v1/security/scans/import", "/api/v1/performance/import"]
NESTED = b"[" * 100_000
INVALID_UTF8 = b'{"metrics": [{"name": "\xff\xfe\xc3\x28", "value": 1}]}'


@pytest.mark.parametrize(("role", "method", "path"), JSON_ROUTES)
@pytest.mark.parametrize(
    "body",
    [NESTED, INVALID_UTF8, b"\xef\xbb\xbf" + b"{" * 50_000],
    ids=["nested", "utf8", "bom-nested"],
)
def test_hostile_json_bodies_are_4xx_problems(
    clients: Clients, engine: Engine, role: str, method: str, path: str, body: bytes
) -> None:
    before = _counts(engine)
    with clients.as_role(role) as client:
        response = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    _assert_error_body(response, otlp_binary=False if path == "/v1/metrics" else None)
    assert before == _counts(engine)


@pytest.mark.parametrize("path", IMPORT_ROUTES)
@pytest.mark.parametrize(
    "body", [NESTED, INVALID_UTF8, b"\x00" * 1000], ids=["nested", "utf8", "nul"]
)
def test_hostile_import_files_are_4xx_problems(
    clients: Clients, engine: Engine, path: str, body: bytes
) -> None:
    before = _counts(engine)
    with clients.as_role("deployer") as client:
        response = client.post(
            path,
            data={"environment": "staging", "version": "1.0.0"},
            files={"file": ("report.json", body, "application/json")},
        )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert before == _counts(engine)


@pytest.mark.parametrize("kind", ["github", "gitlab"])
@pytest.mark.parametrize("body", [NESTED, INVALID_UTF8], ids=["nested", "utf8"])
def test_hostile_signed_webhooks_are_400(
    webhooks: Clients, engine: Engine, kind: str, body: bytes
) -> None:
    headers = (
        {"X-GitHub-Event": "deployment", "X-Hub-Signature-256": _sign(body)}
        if kind == "github"
        else {"X-Gitlab-Event": "Deployment Hook", "X-Gitlab-Token": SECRET}
    )
    before = _counts(engine)
    response = httpx.post(
        f"{webhooks.server.base_url}/api/v1/integrations/{kind}",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert before == _counts(engine)


def test_gzip_bomb_is_refused_with_413(clients: Clients, engine: Engine) -> None:
    """200 MB of zeros in ~200 KB of gzip: decompression stops at the limit."""
    bomb = gzip.compress(b"\x00" * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    before = _counts(engine)
    with clients.as_role("service") as client:
        for content_type in ("application/x-protobuf", "application/json"):
            response = client.post(
                "/v1/metrics",
                content=bomb,
                headers={"content-type": content_type, "content-encoding": "gzip"},
            )
            assert response.status_code == 413, response.text
            _assert_error_body(response, otlp_binary=content_type == "application/x-protobuf")
    assert before == _counts(engine)


def _rss_bytes() -> int:
    # The live server runs in a thread of this process: its memory is ours.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


GIB = 1024**3
BOUNDARY = "fuzzboundary"
MULTIPART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.json"\r\n'
    "Content-Type: application/json\r\n\r\n"
).encode()


def _content_type(path: str) -> str:
    if path.endswith("/import"):
        return f"multipart/form-data; boundary={BOUNDARY}"
    return "application/json"


def _stream(path: str, total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """``total`` bytes of one never-ending JSON array (inside a multipart file for imports)."""
    if path.endswith("/import"):
        yield MULTIPART_HEAD
    yield b"["
    block = b"0," * (chunk // 2)
    for _ in range(total // len(block)):
        yield block


@pytest.fixture
def small_limit_server(db: Any) -> Iterator[LiveServer]:
    live = LiveServer(db.url, max_request_mb=8)
    live.start()
    yield live
    live.stop()


LIMITED_ROUTES = ["/api/v1/metrics", "/v1/metrics", "/api/v1/security/scans/import"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("path", LIMITED_ROUTES)
def test_a_one_gigabyte_body_is_refused_and_memory_stays_flat(
    small_limit_server: LiveServer, make_user: Any, path: str
) -> None:
    """1 GiB streamed (chunked, no Content-Length) and 1 GiB declared by Content-Length: both
    413, and the server's RSS (this process: it runs in a thread here) does not follow."""
    url = small_limit_server.base_url + path
    token = make_user("bulk-sender", "service")
    headers = {"content-type": _content_type(path), "authorization": f"Bearer {token}"}
    rss_before = _rss_bytes()
    with httpx.Client(timeout=120) as client:
        response = client.post(url, content=_stream(path, GIB), headers=headers)
        assert response.status_code == 413, response.text
        # OTLP answers errors as a google.rpc.Status in the request's encoding (here JSON).
        expected = "application/json" if path == "/v1/metrics" else "application/problem+json"
        assert response.headers["content-type"].startswith(expected)
    # Declared, not sent (httpx will not send fewer bytes than it declares): a raw request.
    host, port = "127.0.0.1", small_limit_server.port
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: {_content_type(path)}\r\nContent-Length: {GIB}\r\n\r\n"
            ).encode()
        )
        assert _response_head(sock).startswith(b"HTTP/1.1 413")
    growth = _rss_bytes() - rss_before
    assert growth < 64 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("path", LIMITED_ROUTES)
def test_an_endless_body_is_answered_413_once_past_the_limit(
    small_limit_server: LiveServer, make_user: Any, path: str
) -> None:
    """The answer comes while the client is still sending: 2x the limit goes out, then the
    client stops and reads. A server that waited for the end of the body would never answer."""
    token = make_user("endless-sender", "service")
    host, port = "127.0.0.1", small_limit_server.port
    with socket.create_connection((host, port), timeout=20) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {_content_type(path)}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            for piece in _stream(path, 16 * 1024 * 1024):
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were still sending: what we want
        answer = _response_head(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def _response_head(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    return answer


# --- what the fuzzing found: one test per fix ----------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: {**doc, "runs": [doc["runs"]]},  # a run that is a list
        lambda doc: {**doc, "runs": [{**doc["runs"][0], "tool": {"driver": ["eslint"]}}]},
    ],
)
def test_a_malformed_sarif_report_is_import_failed(change: Any) -> None:
    doc = _doc(FIXTURES / "security" / "sarif" / "eslint__sarif-tutorials_simple-example.sarif")
    with pytest.raises(ImportFailed, match="sarif report is malformed"):
        parse_report(json.dumps(change(doc)).encode())


def test_mean_and_percentiles_of_the_largest_doubles_are_finite() -> None:
    from shipboard.monitoring.series import AGGREGATIONS, mean, percentile

    top = 1.7976931348623157e308
    assert mean([top, top]) == top
    assert mean([top, -top, top]) == pytest.approx(top / 3)
    assert percentile(0.95)([top, -top]) == pytest.approx(top * 0.9)
    assert percentile(0.5)([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert AGGREGATIONS["avg"] is mean
