"""The deployments domain's service functions, one import for the API, CLI, web and worker.

Behaviour lives in one module each: ``creation`` (frequency limit, gates, a new deployment),
``facts`` (what the pure ``gates`` decide on), ``promotion`` (the metrics store's answers to the
promotion checks, asked before the transaction), ``transitions`` (status changes and what
follows them, cancellation), ``approval`` (which judges the gates again), ``rollback``,
``queries`` (reading) and ``logs``. The state machine is ``state`` and the gates are ``gates``;
both are pure.
"""

from __future__ import annotations

from shipboard.deployments import repository
from shipboard.deployments.approval import approval_asks, approve, reject
from shipboard.deployments.creation import (
    create_deployment,
    new_deployment,
    notify_gate_block,
    pipeline_of,
)
from shipboard.deployments.facts import freeze_facts, gate_facts
from shipboard.deployments.logs import MICROSECOND, add_logs, list_logs, log_line, log_read
from shipboard.deployments.promotion import ask_all as ask_promotion_checks
from shipboard.deployments.promotion import asks as promotion_asks
from shipboard.deployments.queries import detail, get_deployment, list_deployments
from shipboard.deployments.rollback import rollback, rollback_environment
from shipboard.deployments.transitions import SYSTEM_ACTOR, cancel, report_status, transition

__all__ = [
    "MICROSECOND",
    "SYSTEM_ACTOR",
    "add_logs",
    "approval_asks",
    "approve",
    "ask_promotion_checks",
    "cancel",
    "create_deployment",
    "detail",
    "freeze_facts",
    "gate_facts",
    "get_deployment",
    "list_deployments",
    "list_logs",
    "log_line",
    "log_read",
    "new_deployment",
    "notify_gate_block",
    "pipeline_of",
    "promotion_asks",
    "reject",
    "report_status",
    "repository",  # callers (and tests) reach the rows through the service module too
    "rollback",
    "rollback_environment",
    "transition",
]
