"""Bag statuses and transitions: the manual's 15 statuses, FAQ 8's cancel rule, auto-close."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.domain import lifecycle as lc
from gateway.domain.lifecycle import TransitionRefused, due_for_close, transition

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = [(s, e, t) for s, moves in lc.TRANSITIONS.items() for e, t in moves.items()]


def test_the_manual_has_15_statuses_and_the_table_knows_each():
    assert len(lc.STATUSES) == len(set(lc.STATUSES)) == 15
    assert set(lc.TRANSITIONS) == set(lc.STATUSES) == set(lc.LABELS_ZH)
    for moves in lc.TRANSITIONS.values():
        assert set(moves) <= set(lc.EVENTS)
        assert set(moves.values()) <= set(lc.STATUSES)


@pytest.mark.parametrize(("status", "event", "target"), ALLOWED)
def test_every_allowed_transition(status, event, target):
    assert transition(status, event) == target


def test_the_normal_life_of_a_bag():
    status = lc.SUBMITTED
    for event in (lc.ROUTE, lc.LABEL_ASSIGNED, lc.PICKUP_SCAN, lc.ARRIVE, lc.RECEIVE):
        status = transition(status, event)
    assert status == lc.RECEIVED


def test_every_status_is_reachable_and_every_bag_can_end():
    reached, todo = {lc.SUBMITTED}, [lc.SUBMITTED]
    while todo:
        for target in lc.TRANSITIONS[todo.pop()].values():
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert reached == set(lc.STATUSES)
    for status in lc.STATUSES:
        seen, todo = {status}, [status]
        while todo:
            for target in lc.TRANSITIONS[todo.pop()].values():
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert seen & lc.TERMINAL, status
    assert lc.TERMINAL == {lc.RECEIVED, lc.RECEIVED_EXCEPTION, lc.CANCELLED, lc.CLOSED}


@pytest.mark.parametrize("status", sorted(lc.AFTER_PICKUP))
def test_cancel_after_the_pickup_scan_is_refused(status):
    with pytest.raises(TransitionRefused) as refused:
        transition(status, lc.CANCEL)
    assert refused.value.code == lc.CANCEL_AFTER_PICKUP
    assert "can no longer be cancelled" in refused.value.message
    assert "FAQ 8" in str(refused.value)


@pytest.mark.parametrize(
    "status", [lc.SUBMITTED, lc.AWAITING_BAG_NUMBER, lc.AWAITING_PICKUP, lc.PICKUP_FAILED]
)
def test_cancel_before_the_pickup_scan_is_allowed(status):
    assert transition(status, lc.CANCEL) == lc.CANCELLING


def test_a_pickup_scan_during_a_cancel_wins():
    status = transition(lc.AWAITING_PICKUP, lc.CANCEL)
    assert transition(status, lc.PICKUP_SCAN) == lc.PICKED_UP


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (lc.SUBMITTED, lc.PICKUP_SCAN),  # no label printed yet
        (lc.AWAITING_PICKUP, lc.ARRIVE),  # never picked up
        (lc.PICKED_UP, lc.RECEIVE),  # the hub signs after arrival
        (lc.RECEIVED, lc.ARRIVE),  # final
        (lc.CANCELLED, lc.CANCEL),  # final
        (lc.CLOSED, lc.PICKUP_SCAN),  # final
        (lc.CANCELLING, lc.CANCEL),  # already cancelling
        (lc.PICKED_UP, lc.CLOSE),  # only bags not picked up are closed
    ],
)
def test_illegal_transitions_are_refused(status, event):
    with pytest.raises(TransitionRefused) as refused:
        transition(status, event)
    assert refused.value.code == lc.ILLEGAL_TRANSITION
    assert status in refused.value.message and event in refused.value.message


def test_unknown_status_and_event_are_refused():
    with pytest.raises(TransitionRefused) as refused:
        transition("lost", lc.ARRIVE)
    assert refused.value.code == lc.UNKNOWN_STATUS
    with pytest.raises(TransitionRefused) as refused:
        transition(lc.SUBMITTED, "teleport")
    assert refused.value.code == lc.UNKNOWN_EVENT


T0 = datetime(2026, 8, 8, 3, 0, tzinfo=UTC)


def test_a_bag_not_picked_up_for_72_hours_is_due_for_close():
    assert not due_for_close(lc.AWAITING_PICKUP, T0, T0 + timedelta(hours=72, seconds=-1))
    assert due_for_close(lc.AWAITING_PICKUP, T0, T0 + timedelta(hours=72))


def test_close_after_is_a_setting():
    assert due_for_close(lc.AWAITING_PICKUP, T0, T0 + timedelta(hours=25), timedelta(hours=24))
    assert not due_for_close(lc.AWAITING_PICKUP, T0, T0 + timedelta(hours=25))


@pytest.mark.parametrize("status", sorted(set(lc.STATUSES) - lc.CLOSED_WHEN_STALE))
def test_bags_not_waiting_for_their_driver_are_never_auto_closed(status):
    assert not due_for_close(status, T0, T0 + timedelta(days=30))


def test_a_bag_still_open_on_its_handheld_is_never_auto_closed():
    assert lc.SUBMITTED not in lc.CLOSED_WHEN_STALE
    assert lc.CLOSED_WHEN_STALE == {lc.AWAITING_PICKUP, lc.PICKUP_FAILED, lc.CANCEL_FAILED}


def test_every_auto_closed_status_accepts_close():
    for status in lc.CLOSED_WHEN_STALE:
        assert transition(status, lc.CLOSE) == lc.CLOSING


def test_due_for_close_wants_aware_times():
    with pytest.raises(ValueError):
        due_for_close(lc.AWAITING_PICKUP, T0.replace(tzinfo=None), T0)


def test_the_documented_diagram_is_the_table():
    doc = (ROOT / "docs" / "bag-lifecycle.md").read_text()
    assert lc.mermaid_diagram() in doc
