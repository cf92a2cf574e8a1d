"""Who may call what: every route of the OpenAPI document, every role, and no credentials.

The authorization model is the table in ``tests/support/authz.py``. A route added without an
entry fails this test.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.authz import (
    BODIES,
    EVERYONE,
    MATRIX,
    PATH_VALUES,
    QUERY,
    ROLES,
    SIGNED,
)
from tests.support.live import Clients


def _routes(clients: Clients) -> list[tuple[str, str]]:
    # The first /openapi.json builds the document: seconds on a loaded machine, past httpx's 5 s.
    doc = httpx.get(f"{clients.server.base_url}/openapi.json", timeout=60).json()
    return [
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_route_has_an_entry(clients: Clients) -> None:
    routes = set(_routes(clients))
    missing = routes - set(MATRIX)
    stale = set(MATRIX) - routes
    assert not missing, f"routes without an authorization entry: {sorted(missing)}"
    assert not stale, f"entries for routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("role", [None, *ROLES])
def test_matrix(clients: Clients, role: str | None) -> None:
    failures = []
    for method, template in _routes(clients):
        path = template
        for placeholder, value in PATH_VALUES.items():
            path = path.replace(placeholder, value)
        allowed = MATRIX[(method, template)]
        body = BODIES.get((method, template))
        with clients.as_role(role) as client:
            response = client.request(method, path, json=body, params=QUERY.get((method, template)))
        if allowed == SIGNED:
            ok = response.status_code == 401
            expected = "401 (no signature)"
        elif allowed == EVERYONE or (role is not None and role in allowed):
            ok = response.status_code not in (401, 403)
            expected = "allowed"
        elif role is None:
            ok = response.status_code == 401
            expected = "401"
        else:
            ok = response.status_code == 403
            expected = "403"
        assert response.status_code < 500, f"{method} {path} as {role}: {response.text}"
        if not ok:
            failures.append(
                f"{method} {path} as {role}: {response.status_code}, expected {expected}"
            )
    assert not failures, "\n".join(failures)
