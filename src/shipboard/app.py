"""Builds the ASGI application."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from shipboard import __version__
from shipboard.alerting.api import router as alerting_router
from shipboard.audit.api import router as audit_router
from shipboard.auth.api import router as auth_router
from shipboard.auth.deps import authenticate_before_body
from shipboard.auth.jwt import JwtVerifier
from shipboard.config import Settings, get_settings
from shipboard.configuration.api import router as config_router
from shipboard.core import openapi, problems
from shipboard.core.bodylimit import BodySizeLimitMiddleware
from shipboard.core.conditional import ConditionalGetMiddleware
from shipboard.core.crypto import Keyring
from shipboard.core.httpmetrics import RequestMetricsMiddleware
from shipboard.core.logging import RequestLogMiddleware, configure_logging
from shipboard.core.nulguard import NulGuardMiddleware
from shipboard.core.pageheaders import PageHeadersMiddleware
from shipboard.core.ratelimit import RateLimiter
from shipboard.core.telemetry import Telemetry
from shipboard.core.transport import StrictTransportSecurityMiddleware
from shipboard.db.engine import create_db_engine
from shipboard.deployments.api import router as deployments_router
from shipboard.deployments.stream import Feeds, StreamBudget
from shipboard.environments.api import router as environments_router
from shipboard.http.db import dispose_async_engine
from shipboard.integrations.api import WEBHOOK_PATHS
from shipboard.integrations.api import router as integrations_router
from shipboard.monitoring.api import router as monitoring_router
from shipboard.monitoring.forwarding import forwarding_from
from shipboard.monitoring.otlp_status import OtlpStatusMiddleware
from shipboard.notifications.api import router as notifications_router
from shipboard.ops.api import router as ops_router
from shipboard.ops.instance_metrics import StateCollector
from shipboard.ops.quotas_api import router as usage_router
from shipboard.performance.api import router as performance_router
from shipboard.reports.api import router as reports_router
from shipboard.security.api import router as security_router


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="Shipboard",
        version=__version__,
        description="Self-hosted release control plane.",
        # Ours instead (web/apidocs.py): FastAPI's load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or create_db_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    app.state.keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    app.state.forwarding = forwarding_from(settings)
    # Series, the monitoring page and report, and promotion checks read it when
    # SHIPBOARD_PROMETHEUS_URL is set.
    app.state.metrics_store = settings.metrics_store()
    app.state.jwt = JwtVerifier(settings)
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    app.state.stream_budget = StreamBudget(
        per_user=settings.streams_per_user, per_process=settings.streams_per_process
    )
    app.state.log_feeds = Feeds(app.state.engine)

    async def close_async_connections() -> None:
        await dispose_async_engine(app)

    app.router.add_event_handler("shutdown", close_async_connections)
    problems.install(app)
    openapi.install(app)
    # Innermost: it hashes the body the route produced, after every error handler has run.
    app.add_middleware(ConditionalGetMiddleware)
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=int(settings.max_request_mb * 1024 * 1024),
        authenticate=authenticate_before_body,
        signed_paths=WEBHOOK_PATHS,
    )
    # Outside the body cap, so its 413 on an OTLP export is re-encoded like every other error.
    app.add_middleware(OtlpStatusMiddleware)
    app.state.telemetry = Telemetry()
    app.state.telemetry.add_collector(StateCollector(app.state.engine, app.state))
    app.add_middleware(RequestMetricsMiddleware, observe=app.state.telemetry.observe_request)
    app.add_middleware(StrictTransportSecurityMiddleware)
    # Outside the error handlers and every other middleware, so no HTML leaves without it.
    app.add_middleware(PageHeadersMiddleware)
    # Outermost, so the request id is bound for every other middleware's log lines too.
    app.add_middleware(RequestLogMiddleware)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(environments_router)
    app.include_router(usage_router)
    app.include_router(deployments_router)
    app.include_router(monitoring_router)
    app.include_router(alerting_router)
    app.include_router(notifications_router)
    app.include_router(reports_router)
    app.include_router(security_router)
    app.include_router(performance_router)
    app.include_router(integrations_router)
    app.include_router(audit_router)
    app.include_router(config_router)
    _install_web(app)
    return app


def _install_web(app: FastAPI) -> None:

    from shipboard.web import account, apidocs, deployments, pages
    from shipboard.web import environments as web_environments
    from shipboard.web import monitoring as web_monitoring
    from shipboard.web import reports as web_reports
    from shipboard.web import security as web_security
    from shipboard.web.errors import html_error

    app.state.html_error = html_error
    from shipboard.web.static_files import DIRECTORY, HashedStaticFiles

    app.mount("/static", HashedStaticFiles(directory=DIRECTORY), name="static")
    app.include_router(apidocs.router)
    app.include_router(account.router)
    app.include_router(pages.router)
    app.include_router(deployments.router)
    app.include_router(web_environments.router)
    app.include_router(web_monitoring.router)
    app.include_router(web_security.router)
    app.include_router(web_reports.router)
