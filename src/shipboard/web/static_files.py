"""Static assets under content-hashed URLs, cached by browsers for a year.

Pages link ``/static/app.css?v=<hash of the file>``; a request whose ``v`` is the file's current
hash may be kept forever (``immutable``), since a changed file gets a new URL. Any other request
for the file (no ``v``, an old one) must be revalidated, which the ``ETag`` makes cheap.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

DIRECTORY = Path(__file__).parent / "static"
YEAR = 365 * 24 * 3600


@cache
def asset_hash(name: str) -> str:
    return hashlib.sha256((DIRECTORY / name).read_bytes()).hexdigest()[:16]


def static_url(name: str) -> str:
    return f"/static/{name}?v={asset_hash(name)}"


class HashedStaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            version = _query_value(scope, b"v")
            fresh = (
                version is not None
                and (DIRECTORY / path).is_file()
                and (version == asset_hash(path))
            )
            response.headers["Cache-Control"] = (
                f"public, max-age={YEAR}, immutable" if fresh else "no-cache"
            )
        return response


def _query_value(scope: Scope, key: bytes) -> str | None:
    for pair in scope.get("query_string", b"").split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == key:
            return str(value.decode("latin-1"))
    return None
