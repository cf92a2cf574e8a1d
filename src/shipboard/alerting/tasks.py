"""Alerting's scheduled work: evaluating the rules and flushing the notification groups they
feed, on the elected node only (so each alert fires once)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from shipboard.alerting import evaluator, repository
from shipboard.core.promql import PromStore, ask
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
) -> bool:
    """One evaluation round: alert rules, then the notification groups they feed. Takes a
    transaction lock on PostgreSQL, so two rounds never overlap. True if it ran.

    The promql rules' queries are asked first, with no transaction open: a slow store must not
    hold SQLite's write lock (or a PostgreSQL connection idle in a transaction)."""
    now = utcnow()
    with system_transaction(engine) as session:
        queries = evaluator.promql_queries(session)
    answers = {rule_id: (query, ask(store, query, at=now)) for rule_id, query in queries.items()}
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
