"""``/docs``: Swagger UI served from our own origin, not from a CDN.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts from jsDelivr and start them with an
inline script: a third party then sees who reads the documentation and serves code that runs
on the session cookie's origin, and the pages' Content-Security-Policy (``script-src 'self'``)
would refuse the inline start. Here Swagger UI's files are vendored in ``web/static/swagger-ui``
(``swagger-ui-dist`` 5, Apache-2.0: version 5 reads OpenAPI 3.1, which FastAPI writes), the start
is our own ``/static/docs.js``, and the page carries the same security headers as every other
page. ReDoc is not served.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from shipboard.core.pageheaders import HTML_HEADERS
from shipboard.web.static_files import static_url

router = APIRouter()

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} — API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{starter}"></script>
</body>
</html>
"""


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    """Swagger UI for /openapi.json, from our own origin."""
    html = _PAGE.format(
        title="Shipboard",
        css=static_url("swagger-ui/swagger-ui.css"),
        bundle=static_url("swagger-ui/swagger-ui-bundle.js"),
        starter=static_url("docs.js"),
    )
    return HTMLResponse(html, headers=HTML_HEADERS)
