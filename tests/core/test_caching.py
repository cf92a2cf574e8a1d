"""HTTP caching: ETag/If-None-Match on the JSON API's reads, content-hashed static assets."""

from __future__ import annotations

import re

import httpx
import pytest

from shipboard.core.conditional import etag_of
from shipboard.web.static_files import asset_hash
from tests.support.factories import start_deployment
from tests.support.live import Clients


def test_a_list_carries_an_etag_and_answers_304_until_it_changes(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        start_deployment(client, "development", "1.0.0")
        first = client.get("/api/v1/deployments", params={"limit": 50})
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag == etag_of(first.content)  # exactly the body's hash
        assert first.headers["cache-control"] == "private, no-cache"

        again = client.get(
            "/api/v1/deployments", params={"limit": 50}, headers={"If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        # Weak and listed forms match too (RFC 9110 weak comparison).
        for header in (f"W/{etag}", f'"nope", {etag}', "*"):
            hit = client.get(
                "/api/v1/deployments", params={"limit": 50}, headers={"If-None-Match": header}
            )
            assert hit.status_code == 304, header

        start_deployment(client, "development", "1.0.1")
        changed = client.get(
            "/api/v1/deployments", params={"limit": 50}, headers={"If-None-Match": etag}
        )
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert changed.json()["items"][0]["version"] == "1.0.1"


def test_errors_writes_and_streams_are_not_tagged(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        missing = client.get("/api/v1/deployments/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404
        assert "etag" not in missing.headers
        created = client.post(
            "/api/v1/deployments",
            json={"environment": "development", "version": "2.0.0", "commit_sha": "abcdef1"},
        )
        assert created.status_code == 201
        assert "etag" not in created.headers
    with clients.as_role("viewer") as viewer:
        # A tag from another answer never produces a 304.
        other = viewer.get("/api/v1/environments", headers={"If-None-Match": '"abc"'})
        assert other.status_code == 200


def test_static_assets_are_immutable_under_their_content_hash(clients: Clients) -> None:
    base = clients.server.base_url
    login_page = httpx.get(f"{base}/login").text
    for name in ("app.css", "app.js"):
        url = f"/static/{name}?v={asset_hash(name)}"
        assert url in login_page  # the pages link the hashed URL
        hashed = httpx.get(f"{base}{url}")
        assert hashed.status_code == 200
        assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
        for stale in (f"/static/{name}", f"/static/{name}?v=0123456789abcdef"):
            plain = httpx.get(f"{base}{stale}")
            assert plain.status_code == 200
            assert plain.headers["cache-control"] == "no-cache"
            revalidated = httpx.get(
                f"{base}{stale}", headers={"If-None-Match": plain.headers["etag"]}
            )
            assert revalidated.status_code == 304


@pytest.mark.parametrize("name", ["app.css", "app.js"])
def test_the_asset_hash_follows_the_file(name: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", asset_hash(name))
