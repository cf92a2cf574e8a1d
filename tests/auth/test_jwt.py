"""JWT bearer tokens: HS256 and JWKS; expired, forged, wrong audience and unsigned are refused."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.databases import Database
from tests.support.live import LiveServer, free_port

SECRET = "test-hs256-secret-of-a-decent-length-0123456789"
ISSUER = "https://idp.example"
AUDIENCE = "shipboard"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "jwt-user",
        "role": "deployer",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def hs_server(db: Database) -> Iterator[LiveServer]:
    live = LiveServer(db.url, jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    live.start()
    yield live
    live.stop()


def _me(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_valid_hs256_token_is_accepted_with_its_role(hs_server: LiveServer) -> None:
    response = _me(hs_server, jwt.encode(_claims(), SECRET, algorithm="HS256"))
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["role"]) == ("jwt-user", "deployer")


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda: jwt.encode(_claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256"),
            id="expired",
        ),
        pytest.param(
            lambda: jwt.encode(
                _claims(), "another-secret-entirely-0123456789abcdef", algorithm="HS256"
            ),
            id="wrong-signature",
        ),
        pytest.param(
            lambda: jwt.encode(_claims(aud="someone-else"), SECRET, algorithm="HS256"),
            id="wrong-audience",
        ),
        pytest.param(
            lambda: jwt.encode(_claims(iss="https://evil.example"), SECRET, algorithm="HS256"),
            id="wrong-issuer",
        ),
        pytest.param(lambda: _unsigned(_claims()), id="alg-none"),
        pytest.param(
            lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"), id="no-expiry"
        ),
        pytest.param(
            lambda: jwt.encode(_claims(role="root"), SECRET, algorithm="HS256"), id="unknown-role"
        ),
        pytest.param(
            lambda: jwt.encode(_claims(role=None), SECRET, algorithm="HS256"), id="no-role"
        ),
        # The namespaces of deployments recorded from webhooks: a subject there would be their
        # triggerer.
        pytest.param(
            lambda: jwt.encode(_claims(sub="github:octocat", role="service"), SECRET, "HS256"),
            id="github-namespace",
        ),
        pytest.param(
            lambda: jwt.encode(_claims(sub="gitlab:root", role="service"), SECRET, "HS256"),
            id="gitlab-namespace",
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_bad_tokens_are_401(hs_server: LiveServer, make_token: Any) -> None:
    response = _me(hs_server, make_token())
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")


def test_disabled_local_user_is_refused_even_with_a_valid_jwt(
    hs_server: LiveServer, make_user: Any, engine: Any
) -> None:
    from shipboard.auth import service as auth
    from shipboard.db.engine import transaction
    from tests.support.databases import SYSTEM

    make_user("jwt-disabled", "viewer")
    with transaction(engine) as session:
        auth.disable_user(session, name="jwt-disabled", audit_context=SYSTEM)
    token = jwt.encode(_claims(sub="jwt-disabled", role="viewer"), SECRET, algorithm="HS256")
    assert _me(hs_server, token).status_code == 401


def test_jwt_role_is_enforced(hs_server: LiveServer) -> None:
    token = jwt.encode(_claims(role="viewer"), SECRET, algorithm="HS256")
    response = httpx.patch(
        f"{hs_server.base_url}/api/v1/environments/staging",
        json={"features": {"x": True}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403


def test_jwks_rs256_tokens(db: Database) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    idp = HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=idp.serve_forever, daemon=True)
    thread.start()
    live = LiveServer(
        db.url, jwt_jwks_url=f"http://127.0.0.1:{port}/jwks.json", jwt_audience=AUDIENCE
    )
    live.start()
    try:
        good = jwt.encode(_claims(role="admin"), key, algorithm="RS256", headers={"kid": "k1"})
        assert _me(live, good).json()["role"] == "admin"
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            _claims(role="admin"), other_key, algorithm="RS256", headers={"kid": "k1"}
        )
        assert _me(live, forged).status_code == 401
        # An unsigned token that names the right key id.
        assert _me(live, _unsigned(_claims(role="admin"))).status_code == 401
    finally:
        live.stop()
        idp.shutdown()
