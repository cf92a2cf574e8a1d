"""The soak run (``make soak``) in miniature: two minutes of mixed traffic must pass every check.

Under ``slow``: ``pytest -m slow tests/system/test_soak.py``. The 30-minute run is ``make soak``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import soak

from tests.support.databases import require_postgres

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_minutes_of_mixed_traffic_pass_every_check(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        require_postgres()
    output = tmp_path / "soak.json"
    status = soak.main(["--minutes", "2", "--backend", backend, "--output", str(output)])
    result = json.loads(output.read_text())
    assert result["requests"] > 500
    assert result["deployments"].get("success", 0) >= 10
    assert result["sse_lines"] > 0
    assert all(result["checks"].values()), result
    assert status == 0
