"""Templates and the context every page shares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from shipboard import __version__
from shipboard.auth.schemas import Principal
from shipboard.core import formatting
from shipboard.core.pageheaders import HTML_HEADERS
from shipboard.web.static_files import static_url

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    # The templates ship with the package: read once, never checked on disk again (pages
    # render on the event loop, which does no file I/O).
    auto_reload=False,
)

NAV = (
    ("/", "Overview", None),
    ("/deployments", "Deployments", None),
    ("/environments", "Environments", None),
    ("/monitoring", "Monitoring", None),
    ("/security", "Security", None),
    ("/performance", "Performance", None),
    ("/dora", "DORA", None),
    ("/audit", "Audit", "admin"),
)


def iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def when(moment: datetime | str | None) -> Markup:
    """A <time> element: UTC in the markup and on hover, the viewer's zone once app.js runs."""
    if not moment:
        return Markup("<span class='muted'>—</span>")
    text = moment if isinstance(moment, str) else moment.isoformat()
    short = text[:16].replace("T", " ") + " UTC"
    # Markup.format escapes its arguments.
    return Markup("<time datetime='{0}' title='{0}'>{1}</time>").format(text, short)


def web_link(url: str | None) -> str | None:
    """``url`` if a browser may follow it from our pages: http(s) only, so a stored
    ``javascript:`` or ``data:`` URL renders as text, never as a link."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url
    return None


env.filters["when"] = when
env.filters["web_link"] = web_link
env.filters["duration"] = formatting.duration
env.filters["percent"] = formatting.percent
env.filters["percent_change"] = formatting.percent_change
env.globals["version"] = __version__
env.globals["static_url"] = static_url


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    info = getattr(request.state, "session", None)
    nav = [
        (href, label)
        for href, label, role in NAV
        if principal is not None and (role is None or principal.role == role)
    ]
    html = env.get_template(template).render(
        request=request,
        principal=principal,
        csrf_token=info.csrf_token if info else "",
        nav=nav,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers=HTML_HEADERS,
    )
