"""/docs serves Swagger UI from the package, under the pages' Content-Security-Policy: no CDN
sees who reads our API documentation, and no script from elsewhere runs on the session
cookie's origin."""

from __future__ import annotations

import re

import httpx

from tests.support.live import LiveServer


def test_docs_page_loads_only_our_own_assets(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "default-src 'self'" in policy
        references = [r for r in re.findall(r'(?:src|href)="([^"]+)"', page.text) if r != "data:,"]
        assert references, page.text
        for reference in references:
            assert reference.startswith("/"), reference  # same origin, no CDN
            assert not reference.startswith("//"), reference
        assert "<script>" not in page.text  # nothing inline: the policy would refuse it
        assert "cdn." not in page.text
        for reference in references:
            asset = client.get(reference)
            assert asset.status_code == 200, reference
        kinds = {client.get(r).headers["content-type"].split(";")[0] for r in references}
        assert {"text/javascript", "text/css"} <= kinds, kinds
        # The script that starts Swagger UI is ours and points at our document.
        starter = next(r for r in references if "docs.js" in r)
        assert "/openapi.json" in client.get(starter).text
        assert client.get("/openapi.json").status_code == 200
        # ReDoc would load its bundle from a CDN: it is not served.
        assert client.get("/redoc").status_code == 404
