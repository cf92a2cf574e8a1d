"""What the environments, monitoring, security, performance, DORA and audit pages share:
query values from GET forms, the audit context of a form post, the redirect after it, and
deployments as chart markers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from shipboard.auth.schemas import Principal
from shipboard.core.charts import Marker
from shipboard.core.errors import InvalidInput
from shipboard.core.types import ENVIRONMENTS
from shipboard.deployments import service as deployments
from shipboard.deployments.schemas import DeploymentFilter

SEVERITIES = ("critical", "high", "medium", "low")
WRITERS = ("deployer", "admin")
M = TypeVar("M", bound=BaseModel)


def can_write(principal: Principal) -> bool:
    return principal.role in WRITERS


def choice(value: str | None, allowed: Iterable[str], field: str) -> str | None:
    """A filter from a GET form: an empty select means "any"; anything unknown is a 422.

    FastAPI's Literal parameters would refuse the empty string that a form sends for "any"."""
    if value is None or value == "":
        return None
    options = tuple(allowed)
    if value not in options:
        raise InvalidInput(
            f"{field} must be one of: {', '.join(options)}",
            errors=[{"loc": ["query", field], "msg": "unknown value"}],
        )
    return value


def environment_choice(value: str | None, field: str = "environment") -> str | None:
    return choice(value, ENVIRONMENTS, field)


def flag(value: str | None, field: str) -> bool | None:
    """A yes/no filter: empty means either."""
    picked = choice(value, ("true", "false"), field)
    return None if picked is None else picked == "true"


def moment(value: str | None, field: str) -> datetime | None:
    """A date (midnight UTC) or an ISO date-time (UTC when it has no offset)."""
    if not value:
        return None
    try:
        parsed = (
            datetime.fromisoformat(value)
            if "T" in value or " " in value
            else datetime.combine(date.fromisoformat(value), datetime.min.time())
        )
    except ValueError as exc:
        raise InvalidInput(
            f"{field} is not a date (YYYY-MM-DD) or date-time",
            errors=[{"loc": ["query", field], "msg": "not a date"}],
        ) from exc
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        # Stored and compared in UTC: 0001-01-01T00:00+14:00 is valid text but no UTC time.
        parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(
            f"{field} is out of the supported range of dates once converted to UTC",
            errors=[{"loc": ["query", field], "msg": "out of range"}],
        ) from exc
    return parsed


def validated(model: type[M], data: Mapping[str, object], where: str = "form") -> M:
    """Build a domain model from form fields; its validation errors become a 422 page."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise InvalidInput(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or where}: {e['msg']}" for e in errors),
            errors=[{"loc": [where, *e["loc"]], "msg": e["msg"]} for e in errors],
        ) from exc


def back(path: str, done: str, **params: str | None) -> RedirectResponse:
    """303 to the page the form was on, with ``done`` naming what happened.

    ``done`` is a code that the page maps to its own sentence: a message carried in the URL
    would let any link put words on our page."""
    query = {k: v for k, v in params.items() if v}
    query["done"] = done
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


def deploy_markers(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> list[Marker]:
    """Deployments of the environment that completed in the range, as chart markers."""
    # The filter is on created_at; a day's slack catches deployments that ran long.
    page = deployments.list_deployments(
        session,
        filters=DeploymentFilter(environment=environment, since=since - timedelta(days=1)),
        limit=500,
    )
    return [
        Marker(
            at=d.completed_at,
            label=f"{d.version} {d.status.replace('_', ' ')} · {d.triggered_by}",
            kind=d.status,
        )
        for d in page.items
        if d.completed_at is not None and since <= d.completed_at <= until
    ]
