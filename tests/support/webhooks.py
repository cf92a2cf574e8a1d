"""GitHub and GitLab as they call Shipboard: the real payloads of ``tests/fixtures/integrations/``
signed with a known secret."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import httpx

from tests.support.live import Clients
from tests.support.paths import FIXTURES

INTEGRATION_FIXTURES = FIXTURES / "integrations"
SECRET = "It's a Secret to Everybody"


def webhook_payload(name: str) -> bytes:
    """The bytes of ``tests/fixtures/integrations/<name>``."""
    return (INTEGRATION_FIXTURES / name).read_bytes()


def sign_github(body: bytes, secret: str = SECRET) -> str:
    """The ``X-Hub-Signature-256`` GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def configure_integration(admin: httpx.Client, kind: str, **body: Any) -> dict[str, Any]:
    response = admin.put(f"/api/v1/integrations/{kind}", json={"secret": SECRET, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def post_github(
    clients: Clients,
    event: str,
    body: bytes,
    *,
    delivery: str | None = None,
    signature: str | None = "sign",
) -> httpx.Response:
    """Deliver ``body`` as GitHub would: signed with ``SECRET`` unless ``signature`` says."""
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "User-Agent": "GitHub-Hookshot/test",
    }
    if signature == "sign":
        headers["X-Hub-Signature-256"] = sign_github(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(
        f"{clients.server.base_url}/api/v1/integrations/github", content=body, headers=headers
    )
