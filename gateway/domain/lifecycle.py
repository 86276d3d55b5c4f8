"""Bag statuses and the one table of allowed transitions (docs/domain.md, "Bag statuses")."""

from __future__ import annotations

from datetime import datetime, timedelta

# The manual's 15 statuses ("查看大包状态"), in the order a bag normally meets them.
SUBMITTED = "submitted"  # 已提交: bag-parcel relation submitted
AWAITING_BAG_NUMBER = "awaiting_bag_number"  # 待分配大包单号: routing, waybill, label
AWAITING_PICKUP = "awaiting_pickup"  # 待司机揽收: pickup task sent to the pickup company
PICKED_UP = "picked_up"  # 已揽收: the driver scanned the bag
PICKUP_FAILED = "pickup_failed"  # 揽收失败: the driver could not take the bag
ARRIVED = "arrived"  # 已到达: delivered to the first-mile sorting center
RECEIVED = "received"  # 签收正常
RECEIVED_EXCEPTION = "received_exception"  # 签收异常
RECEIPT_FAILED = "receipt_failed"  # 签收失败
CANCELLING = "cancelling"  # 取消中
CANCELLED = "cancelled"  # 已取消
CANCEL_FAILED = "cancel_failed"  # 取消失败
CLOSING = "closing"  # 关闭中: the system closes a bag not picked up for a long time
CLOSED = "closed"  # 已关闭
CLOSE_FAILED = "close_failed"  # 关闭失败

STATUSES = (
    SUBMITTED,
    AWAITING_BAG_NUMBER,
    AWAITING_PICKUP,
    PICKED_UP,
    PICKUP_FAILED,
    ARRIVED,
    RECEIVED,
    RECEIVED_EXCEPTION,
    RECEIPT_FAILED,
    CANCELLING,
    CANCELLED,
    CANCEL_FAILED,
    CLOSING,
    CLOSED,
    CLOSE_FAILED,
)

# The manual's Chinese names, for the admin page.
LABELS_ZH = {
    SUBMITTED: "已提交",
    AWAITING_BAG_NUMBER: "待分配大包单号",
    AWAITING_PICKUP: "待司机揽收",
    PICKED_UP: "已揽收",
    PICKUP_FAILED: "揽收失败",
    ARRIVED: "已到达",
    RECEIVED: "签收正常",
    RECEIVED_EXCEPTION: "签收异常",
    RECEIPT_FAILED: "签收失败",
    CANCELLING: "取消中",
    CANCELLED: "已取消",
    CANCEL_FAILED: "取消失败",
    CLOSING: "关闭中",
    CLOSED: "已关闭",
    CLOSE_FAILED: "关闭失败",
}

# Events (causes) that move a bag.
ROUTE = "route"  # the bag is sent for routing / waybill assignment
LABEL_ASSIGNED = "label_assigned"  # bag number and label assigned; pickup task sent
PICKUP_SCAN = "pickup_scan"  # the driver scanned the bag label
PICKUP_REFUSED = "pickup_refused"  # no goods / packaging not compliant / overweight, overlong
RETRY_PICKUP = "retry_pickup"  # the seller fixed the bag; a new pickup task is sent
ARRIVE = "arrive"  # the bag reached the sorting center
RECEIVE = "receive"  # the hub signed, weights agree (see arrival.py)
RECEIVE_WITH_EXCEPTION = "receive_with_exception"  # the hub signed with an exception
RECEIPT_FAIL = "receipt_fail"  # the hub could not sign
CANCEL = "cancel"  # the seller asks to cancel
CANCEL_CONFIRMED = "cancel_confirmed"
CANCEL_REJECTED = "cancel_rejected"
CLOSE = "close"  # the system closes a bag not picked up for a long time (see due_for_close)
CLOSE_CONFIRMED = "close_confirmed"
CLOSE_REJECTED = "close_rejected"

EVENTS = (
    ROUTE,
    LABEL_ASSIGNED,
    PICKUP_SCAN,
    PICKUP_REFUSED,
    RETRY_PICKUP,
    ARRIVE,
    RECEIVE,
    RECEIVE_WITH_EXCEPTION,
    RECEIPT_FAIL,
    CANCEL,
    CANCEL_CONFIRMED,
    CANCEL_REJECTED,
    CLOSE,
    CLOSE_CONFIRMED,
    CLOSE_REJECTED,
)

# THE table: status -> {event -> next status}. Anything not listed is refused.
# Why the less obvious rows exist:
# - a pickup scan is a physical fact: a bag scanned while its cancel or close is pending (or
#   after either failed) was handed over, so the scan wins (FAQ 8: once the pickup is
#   reported the bag can no longer be cancelled);
# - after a refused pickup the seller may fix the bag and ask again, cancel it, or leave it
#   to be closed;
# - a hub that could not sign may sign later.
TRANSITIONS: dict[str, dict[str, str]] = {
    SUBMITTED: {ROUTE: AWAITING_BAG_NUMBER, CANCEL: CANCELLING, CLOSE: CLOSING},
    AWAITING_BAG_NUMBER: {LABEL_ASSIGNED: AWAITING_PICKUP, CANCEL: CANCELLING, CLOSE: CLOSING},
    AWAITING_PICKUP: {
        PICKUP_SCAN: PICKED_UP,
        PICKUP_REFUSED: PICKUP_FAILED,
        CANCEL: CANCELLING,
        CLOSE: CLOSING,
    },
    PICKUP_FAILED: {
        RETRY_PICKUP: AWAITING_PICKUP,
        PICKUP_SCAN: PICKED_UP,
        CANCEL: CANCELLING,
        CLOSE: CLOSING,
    },
    # The driver scanned the label, then refused the bag at the door (its contents, packaging
    # or size): the scan stands in the history, the pickup failed.
    PICKED_UP: {ARRIVE: ARRIVED, PICKUP_REFUSED: PICKUP_FAILED},
    ARRIVED: {
        RECEIVE: RECEIVED,
        RECEIVE_WITH_EXCEPTION: RECEIVED_EXCEPTION,
        RECEIPT_FAIL: RECEIPT_FAILED,
    },
    RECEIVED: {},
    RECEIVED_EXCEPTION: {},
    RECEIPT_FAILED: {RECEIVE: RECEIVED, RECEIVE_WITH_EXCEPTION: RECEIVED_EXCEPTION},
    CANCELLING: {
        CANCEL_CONFIRMED: CANCELLED,
        CANCEL_REJECTED: CANCEL_FAILED,
        PICKUP_SCAN: PICKED_UP,
    },
    CANCELLED: {},
    CANCEL_FAILED: {CANCEL: CANCELLING, PICKUP_SCAN: PICKED_UP, CLOSE: CLOSING},
    CLOSING: {CLOSE_CONFIRMED: CLOSED, CLOSE_REJECTED: CLOSE_FAILED, PICKUP_SCAN: PICKED_UP},
    CLOSED: {},
    CLOSE_FAILED: {CLOSE: CLOSING, PICKUP_SCAN: PICKED_UP, CANCEL: CANCELLING},
}

TERMINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)

# Statuses in which the pickup scan is recorded: from here on a cancel is refused (FAQ 8).
AFTER_PICKUP = frozenset({PICKED_UP, ARRIVED, RECEIVED, RECEIVED_EXCEPTION, RECEIPT_FAILED})

# Statuses in which a bag still waits for its driver: the ones the auto-close sweeps.
# close_failed is left to a person: the system already tried and was told no.
WAITING_FOR_PICKUP = frozenset(
    {SUBMITTED, AWAITING_BAG_NUMBER, AWAITING_PICKUP, PICKUP_FAILED, CANCEL_FAILED}
)

# A parcel in a bag with one of these statuses is free to go into another bag.
RELEASES_PARCELS = frozenset({CANCELLED, CLOSED})

# docs/domain.md: "a long time" is not given by the manual; (product choice) default 72 h.
DEFAULT_CLOSE_AFTER = timedelta(hours=72)

# Refusal codes.
CANCEL_AFTER_PICKUP = "CANCEL_AFTER_PICKUP"
ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
UNKNOWN_STATUS = "UNKNOWN_STATUS"
UNKNOWN_EVENT = "UNKNOWN_EVENT"


class TransitionRefused(Exception):
    """A status change the table does not allow; `code` is what the API and admin page show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def allowed_events(current: str) -> dict[str, str]:
    """The events `current` accepts, with the status each leads to."""
    if current not in TRANSITIONS:
        raise TransitionRefused(UNKNOWN_STATUS, f"unknown bag status {current!r}")
    return dict(TRANSITIONS[current])


def transition(current: str, event: str) -> str:
    """The status after `event`, or TransitionRefused saying why not."""
    moves = allowed_events(current)
    if event not in EVENTS:
        raise TransitionRefused(UNKNOWN_EVENT, f"unknown bag event {event!r}")
    if event in moves:
        return moves[event]
    if event == CANCEL and current in AFTER_PICKUP:
        raise TransitionRefused(
            CANCEL_AFTER_PICKUP,
            f"the bag is {current}: its pickup scan is recorded, so it can no longer be "
            "cancelled (manual FAQ 8)",
        )
    accepted = ", ".join(sorted(moves)) or "nothing (final status)"
    raise TransitionRefused(
        ILLEGAL_TRANSITION, f"a {current} bag cannot take {event!r}; it accepts {accepted}"
    )


# The statuses the auto-close takes: a bag that was handed to the pickup company
# (awaiting_pickup) and is still not picked up. A submitted bag is still open on its handheld
# (its bag_close moves it on), so the system never closes it under the seller's hands.
CLOSED_WHEN_STALE = WAITING_FOR_PICKUP - {SUBMITTED, AWAITING_BAG_NUMBER}


def due_for_close(
    status: str,
    waiting_since: datetime,
    now: datetime,
    close_after: timedelta = DEFAULT_CLOSE_AFTER,
) -> bool:
    """True when the system should close the bag: `close_after` has passed since it became
    awaiting_pickup (`waiting_since`, its latest such move) and it is still not picked up.

    Both times must be timezone-aware (the gateway stores UTC).
    """
    if waiting_since.tzinfo is None or now.tzinfo is None:
        raise ValueError("due_for_close needs timezone-aware datetimes")
    if status not in TRANSITIONS:
        raise TransitionRefused(UNKNOWN_STATUS, f"unknown bag status {status!r}")
    return status in CLOSED_WHEN_STALE and now - waiting_since >= close_after


def mermaid_diagram() -> str:
    """The transition table as a mermaid stateDiagram (docs/bag-lifecycle.md embeds it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {SUBMITTED}"]
    for status in STATUSES:
        for event, target in TRANSITIONS[status].items():
            lines.append(f"    {status} --> {target}: {event}")
    for status in STATUSES:
        if status in TERMINAL:
            lines.append(f"    {status} --> [*]")
    return "\n".join(lines) + "\n"
