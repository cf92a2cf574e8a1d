"""Alerting's scheduled work: evaluating the rules and flushing the notification groups they
feed, on the elected node only (so each alert fires once)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from shipboard.alerting import evaluator, repository
from shipboard.core.promql import PromStore, ask_all
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.jobs.schedule import ScheduledTask, Tick, every
from shipboard.notifications import grouping


def evaluate(
    engine: Engine,
    *,
    alertmanager_resend_s: float = grouping.ALERTMANAGER_RESEND_S,
    eval_interval_s: float = 15.0,
    store: PromStore | None = None,
    promql_round_s: float | None = None,
) -> bool:
    """One evaluation round: alert rules, then the notification groups they feed. Takes a
    transaction lock on PostgreSQL, so two rounds never overlap. True if it ran.

    The promql rules' queries are asked first, with no transaction open: a slow store must not
    hold SQLite's write lock (or a PostgreSQL connection idle in a transaction). They are asked
    together, a few at a time, and all within ``promql_round_s`` (default: the store's own
    timeout): a store that hangs costs the round one timeout, not one per rule, and a rule
    whose answer did not come in time is erroring this round, its alerts unchanged."""
    now = utcnow()
    with system_transaction(engine) as session:
        queries = evaluator.promql_queries(session)
    within_s = promql_round_s if promql_round_s is not None else _timeout_s(store)
    asked = ask_all(store, queries, at=now, within_s=within_s)
    answers = {rule_id: (query, asked[rule_id]) for rule_id, query in queries.items()}
    with system_transaction(engine) as session:
        if not repository.try_evaluation_lock(session):
            return False
        evaluator.evaluate_rules(session, now=now, promql=answers)
        grouping.flush_groups(
            session,
            now=now,
            alerts_for=evaluator.group_alerts(session, now),
            alertmanager_resend_s=alertmanager_resend_s,
            eval_interval_s=eval_interval_s,
        )
    return True


def _timeout_s(store: PromStore | None) -> float:
    return store.settings.timeout_s if store is not None else 0.0


def scheduled(
    engine: Engine,
    *,
    eval_interval_s: float = 15.0,
    alertmanager_resend_s: float = grouping.ALERTMANAGER_RESEND_S,
    store: PromStore | None = None,
) -> list[ScheduledTask]:
    """Alert evaluation every ``eval_interval_s``; promql rules ask ``store``."""

    def run_evaluate(_tick: Tick) -> None:
        evaluate(
            engine,
            alertmanager_resend_s=alertmanager_resend_s,
            eval_interval_s=eval_interval_s,
            store=store,
        )

    return [
        ScheduledTask("alerting.evaluate", every(eval_interval_s), run=run_evaluate, lease_s=300)
    ]
