"""The deployment state machine. Pure: no I/O, so it is tested without a database."""

from __future__ import annotations

from shipboard.core.errors import Conflict

TERMINAL = frozenset({"success", "failed", "rolled_back"})
RUNNING = frozenset({"building", "deploying"})

# success/failed -> rolled_back happens only when a rollback of that deployment succeeds;
# callers of the status route cannot ask for it.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"building", "failed"}),
    "building": frozenset({"deploying", "failed"}),
    "deploying": frozenset({"success", "failed"}),
    "success": frozenset({"rolled_back"}),
    "failed": frozenset({"rolled_back"}),
    "rolled_back": frozenset(),
}
REPORTABLE = frozenset({"building", "deploying", "success", "failed"})


def allowed(current: str) -> frozenset[str]:
    return TRANSITIONS[current]


def check_transition(current: str, target: str) -> None:
    """Raise Conflict naming the allowed next states unless current -> target is allowed."""
    if target not in TRANSITIONS.get(current, frozenset()):
        nexts = sorted(TRANSITIONS.get(current, frozenset()))
        allowed_text = ", ".join(nexts) if nexts else "none (it is final)"
        raise Conflict(
            f"a deployment cannot go from {current!r} to {target!r}; allowed: {allowed_text}",
            extra={"current": current, "allowed": nexts},
        )


def can_roll_back(status: str, *, deploy_ran: bool) -> bool:
    """A success, or a failure after its deploy stage ran, can be rolled back."""
    return status == "success" or (status == "failed" and deploy_ran)
