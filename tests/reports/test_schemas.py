"""The report endpoints' typed answers: the models describe the computed JSON exactly, and
OpenAPI names them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shipboard.app import create_app
from shipboard.config import Settings
from shipboard.reports.dora import DeploymentFact, compute_dora
from shipboard.reports.schemas import DoraReport

MONDAY = datetime(2024, 1, 1, tzinfo=UTC)


def test_dora_model_takes_every_key_of_the_computed_report() -> None:
    facts = [
        DeploymentFact(
            id=str(i),
            status=("success", "failed", "rolled_back")[i % 3],
            created_at=MONDAY + timedelta(days=i),
            completed_at=MONDAY + timedelta(days=i, hours=1),
            commit_timestamp=MONDAY + timedelta(days=i) - timedelta(hours=2),
        )
        for i in range(12)
    ]
    for history in (facts, []):
        report = compute_dora(
            history, environment="production", since=MONDAY, until=MONDAY + timedelta(days=21)
        )
        # extra="forbid": a key the arithmetic adds without the model fails here.
        assert DoraReport.model_validate(report).model_dump() == report


def test_openapi_describes_every_report_answer(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'openapi.db'}"))
    paths = app.openapi()["paths"]
    expected = {
        "dora": "DoraReport",
        "performance": "PerformanceReport",
        "security": "SecurityReport",
        "monitoring": "MonitoringReport",
    }
    for kind, model in expected.items():
        answer = paths[f"/api/v1/reports/{kind}"]["get"]["responses"]["200"]["content"]
        assert answer["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert {"text/csv", "text/html"} <= answer.keys()
