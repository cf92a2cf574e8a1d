"""Promotion checks (``config.promotion_checks``): queries of the user's metrics store that
gate a deployment, one gate each (``gates.store_check``).

The store is asked before the request's transaction opens (``api.promotion_answers``): a slow
store must not hold SQLite's write lock, nor keep a PostgreSQL connection idle in a
transaction, while the environment row is locked for the create. The answers are then matched,
inside the transaction, against the checks as the locked row has them: a check added or changed
in between was not asked, and blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from shipboard.core.errors import InvalidInput
from shipboard.core.promql import PromStore, render
from shipboard.core.promql import ask_all as ask_store
from shipboard.deployments import gates, repository
from shipboard.environments.config_sections import (
    PROMOTION_VARIABLES,
    PromotionCheck,
    PromotionChecks,
)
from shipboard.environments.models import Environment
from shipboard.environments.validation import stored_mapping

_CHECKS: TypeAdapter[list[PromotionCheck]] = TypeAdapter(PromotionChecks)
NOT_ASKED = "the metrics store was not asked (the check was added or changed meanwhile); try again"


@dataclass(frozen=True)
class Ask:
    name: str
    query: str  # rendered


# By check name: the query asked and what the store answered (samples, or why there are none).
Answers = Mapping[str, tuple[str, list[tuple[dict[str, str], float]] | str]]


def configured(environment: Environment) -> list[PromotionCheck]:
    """The environment's promotion checks; none when the stored section does not validate (the
    configuration gate blocks such an environment, naming it)."""
    raw = stored_mapping(environment.config).get("promotion_checks")
    if not raw:
        return []
    try:
        return list(_CHECKS.validate_python(raw))
    except (ValidationError, ValueError):
        return []


def _rendered(check: PromotionCheck, *, environment: str, version: str) -> str | None:
    variables = dict(zip(PROMOTION_VARIABLES, (environment, version), strict=True))
    try:
        return render(check.query, variables)
    except InvalidInput:
        return None


def asks(session: Session, *, environment: str, version: str) -> list[Ask]:
    """What to ask the store for a deployment of ``version`` to ``environment`` (a read)."""
    row = repository.get_environment(session, environment)
    if row is None:
        return []
    out = []
    for check in configured(row):
        query = _rendered(check, environment=environment, version=version)
        if query is not None:
            out.append(Ask(check.name, query))
    return out


def ask_all(store: PromStore | None, questions: list[Ask], *, at: datetime) -> Answers:
    """Every question put to the store at ``at`` (no transaction may be open: this waits on
    HTTP)."""
    # All at once, within one store timeout: a store that hangs costs a create or an approval
    # one timeout, not one per check.
    within = store.settings.timeout_s if store is not None else 0.0
    given = ask_store(store, {q.name: q.query for q in questions}, at=at, within_s=within)
    answers: dict[str, tuple[str, list[tuple[dict[str, str], float]] | str]] = {}
    for question in questions:
        answer = given[question.name]
        answers[question.name] = (
            question.query,
            answer if isinstance(answer, str) else [(s.labels, s.value) for s in answer],
        )
    return answers


def store_checks(
    environment: Environment, version: str, answers: Answers
) -> list[gates.StoreCheck]:
    """The environment's checks (as its locked row has them) with the answers given to them."""
    out = []
    for check in configured(environment):
        query = _rendered(check, environment=environment.name, version=version)
        given = answers.get(check.name)
        answer = given[1] if given is not None and given[0] == query else NOT_ASKED
        out.append(
            gates.StoreCheck(check.name, query or check.query, check.op, check.value, answer)
        )
    return out
