"""Which read routes run on the event loop (http/db.py's ``on_loop``): every GET route of the API
and the pages does, except those listed here with the reason they cannot. A route on the loop
has no sync dependency either: FastAPI runs one in a worker thread, a hop per request."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from shipboard.app import create_app
from shipboard.config import Settings
from shipboard.http.db import on_loop

REPORT = "a report: computed in Python over as many rows as the period holds"

# path -> why its GET stays in a worker thread
SYNC_READS: dict[str, str] = {
    "/readyz": "probes the database on a connection of its own",
    "/metrics": "its collectors read the database on connections of their own",
    "/api/v1/ops/db-health": "reads the database's statistics on a connection of its own",
    "/api/v1/deployments/{deployment_id}/logs/stream": "Server-Sent Events",
    "/api/v1/reports/monitoring": "asks the metrics store over HTTP in the same function as the "
    "database read of the alerts",
    "/api/v1/config": "decrypts every stored credential as it reads them: the keyring may read "
    "its key file again",
    "/docs": "no database; its first request reads and hashes the 1.7 MB Swagger UI bundle",
    # Reports compute over up to years of rows in Python: inline on the loop one would hold
    # every other request for as long as it takes; in a thread the loop still gets its turns.
    "/api/v1/reports/security": REPORT,
    "/api/v1/reports/dora": REPORT,
    "/api/v1/reports/performance": REPORT,
    "/dora": REPORT,
    "/performance": REPORT,
    "/": "three 30-day DORA reports, one per environment card: " + REPORT,
}


def _get_routes(app: FastAPI) -> Iterator[APIRoute]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and "GET" in route.methods:
            yield route


def _runs_on_loop(route: APIRoute) -> bool:
    # The scope a request matched to this route carries (http/db.py reads these two keys).
    scope = {"type": "http", "route": route, "endpoint": route.endpoint}
    return on_loop(Request(scope))


def _is_async(call: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    if inspect.isroutine(call) or inspect.isclass(call):
        return False
    method = getattr(call, "__call__", None)  # noqa: B004 - an instance's own __call__
    return inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)


def _sync_dependencies(dependant: Any) -> Iterator[str]:
    for sub in dependant.dependencies:
        if sub.call is not None and not _is_async(sub.call):
            yield getattr(sub.call, "__qualname__", repr(sub.call))
        yield from _sync_dependencies(sub)


def _app(tmp_path: Path) -> FastAPI:
    return create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}", home=str(tmp_path))
    )


def test_every_read_route_runs_on_the_event_loop_unless_listed(tmp_path: Path) -> None:
    routes = list(_get_routes(_app(tmp_path)))
    threaded = {route.path for route in routes if not _runs_on_loop(route)}
    assert threaded == set(SYNC_READS)
    assert all(why for why in SYNC_READS.values())


def test_a_read_route_on_the_loop_has_no_dependency_run_in_a_thread(tmp_path: Path) -> None:
    hops = {
        route.path: sorted(set(_sync_dependencies(route.dependant)))
        for route in _get_routes(_app(tmp_path))
        if _runs_on_loop(route)
    }
    assert {path: deps for path, deps in hops.items() if deps} == {}
