"""The deployment state machine, directly: no database, no HTTP."""

from __future__ import annotations

import pytest

from shipboard.core.errors import Conflict
from shipboard.deployments import state

EVERY_STATUS = sorted(state.TRANSITIONS)


def test_every_status_has_its_transitions_and_they_lead_to_known_statuses() -> None:
    assert set(state.TRANSITIONS) == {
        "pending",
        "building",
        "deploying",
        "success",
        "failed",
        "rolled_back",
    }
    for targets in state.TRANSITIONS.values():
        assert targets <= set(state.TRANSITIONS)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "building"),
        ("pending", "failed"),
        ("building", "deploying"),
        ("building", "failed"),
        ("deploying", "success"),
        ("deploying", "failed"),
        ("success", "rolled_back"),
        ("failed", "rolled_back"),
    ],
)
def test_allowed_transition_passes(current: str, target: str) -> None:
    state.check_transition(current, target)
    assert target in state.allowed(current)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "deploying"),
        ("pending", "success"),
        ("building", "success"),
        ("deploying", "building"),
        ("success", "failed"),
        ("failed", "success"),
        ("pending", "pending"),
    ],
)
def test_refused_transition_names_the_allowed_next_states(current: str, target: str) -> None:
    with pytest.raises(Conflict) as caught:
        state.check_transition(current, target)
    assert caught.value.extra["current"] == current
    assert caught.value.extra["allowed"] == sorted(state.TRANSITIONS[current])
    assert repr(current) in str(caught.value)
    assert repr(target) in str(caught.value)


@pytest.mark.parametrize("target", EVERY_STATUS)
def test_rolled_back_is_final(target: str) -> None:
    with pytest.raises(Conflict, match=r"none \(it is final\)"):
        state.check_transition("rolled_back", target)


def test_unknown_current_status_allows_nothing() -> None:
    with pytest.raises(Conflict) as caught:
        state.check_transition("queued", "building")
    assert caught.value.extra["allowed"] == []


def test_terminal_statuses_only_lead_to_rolled_back() -> None:
    for status in state.TERMINAL:
        assert state.TRANSITIONS[status] <= {"rolled_back"}
    assert state.RUNNING.isdisjoint(state.TERMINAL)


def test_a_reporter_cannot_ask_for_rolled_back_or_pending() -> None:
    assert "rolled_back" not in state.REPORTABLE
    assert "pending" not in state.REPORTABLE


@pytest.mark.parametrize(
    ("status", "deploy_ran", "expected"),
    [
        ("success", True, True),
        ("success", False, True),
        ("failed", True, True),
        ("failed", False, False),
        ("pending", True, False),
        ("deploying", True, False),
        ("rolled_back", True, False),
    ],
)
def test_can_roll_back_a_success_or_a_failure_after_its_deploy_stage(
    status: str, deploy_ran: bool, expected: bool
) -> None:
    assert state.can_roll_back(status, deploy_ran=deploy_ran) is expected
