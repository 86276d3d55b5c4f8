"""Bag actions taken at the gateway: cancel, the system's close of stale bags, manual events."""

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import settings
from gateway.domain import lifecycle
from gateway.errors import Refused
from gateway.ingest.registry import request
from gateway.models import Bag, BagHistory

# Events a person may apply by hand (the admin page, the API): everything except the pickup
# scan and refusal, which only a driver's scan on a handheld gives (its time is the bag's
# legal pickup time).
MANUAL_EVENTS = tuple(
    e for e in lifecycle.EVENTS if e not in (lifecycle.PICKUP_SCAN, lifecycle.PICKUP_REFUSED)
)


def cancel(session: Session, bag: Bag, at: datetime, actor: str, why: str = "") -> None:
    """The seller cancels a bag: cancelling, then cancelled at once.

    (product choice) The gateway is the system of record: nobody else confirms a cancel, so
    the request and its confirmation are one action, both kept in the history. Once the pickup
    scan is recorded lifecycle refuses it (CANCEL_AFTER_PICKUP, manual FAQ 8): Refused (409).

    A cancel is decided at its own time, not when it reaches the gateway (docs/bag-lifecycle.md,
    "A cancel is decided at its own time"): a refused one is kept too, and the caller commits
    before answering, so that a record older than the request that arrives later (the
    driver's refusal of the pickup the cancel was refused for) makes it apply.
    """
    steps = [
        (lifecycle.CANCEL, why or "cancel requested"),
        (lifecycle.CANCEL_CONFIRMED, "cancelled before pickup"),
    ]
    try:
        request(session, bag, steps, at, actor, keep_refused=True)
    except lifecycle.TransitionRefused as err:
        kept = f"{err.message}; the request is kept and applies if records of the bag from before {at:%Y-%m-%d %H:%M:%S} UTC show it could"
        raise Refused(409, err.code, kept, "bag_no") from None


def apply_event(
    session: Session, bag: Bag, event: str, at: datetime, cause: str, actor: str
) -> None:
    """A manual event (MANUAL_EVENTS); Refused (409) when the bag's status does not allow it.
    A person decides on what the page shows: a refused manual event is not kept."""
    try:
        request(session, bag, [(event, cause)], at, actor)
    except lifecycle.TransitionRefused as err:
        raise Refused(409, err.code, err.message, "event") from None


def close_after(session: Session) -> timedelta:
    return timedelta(hours=float(settings.of(session)["CLOSE_AFTER_HOURS"]))


def close_stale(session: Session, now: datetime, limit: int = 1000) -> list[str]:
    """Close bags still not picked up CLOSE_AFTER_HOURS after they became awaiting_pickup
    (domain.lifecycle.due_for_close); returns their numbers.

    Run by bagscan-gateway every CLOSE_EVERY_MINUTES (gateway/serve.py) and by
    `flask --app gateway close-stale-bags`. A bag still open on its handheld (submitted) is
    never closed; a pickup_failed or cancel_failed bag counts from its latest awaiting_pickup.
    """
    after = close_after(session)
    waiting_since = (
        select(BagHistory.bag_id, func.max(BagHistory.at).label("at"))
        .where(BagHistory.to_status == lifecycle.AWAITING_PICKUP)
        .group_by(BagHistory.bag_id)
        .subquery()
    )
    candidates = session.execute(
        select(Bag, waiting_since.c.at)
        .join(waiting_since, waiting_since.c.bag_id == Bag.id)
        .where(
            Bag.status.in_(sorted(lifecycle.CLOSED_WHEN_STALE)),
            waiting_since.c.at <= now - after,
        )
        .order_by(Bag.id)
        .limit(limit)
        .with_for_update(of=Bag, skip_locked=True)
    ).all()
    closed = []
    hours = f"{after.total_seconds() / 3600:g}"
    for bag, since in candidates:
        if not lifecycle.due_for_close(bag.status, since, now, after):
            continue
        why = f"not picked up within {hours} h of awaiting pickup"
        steps = [(lifecycle.CLOSE, why), (lifecycle.CLOSE_CONFIRMED, "closed by the system")]
        request(session, bag, steps, now, "system")
        closed.append(bag.bag_no)
    return closed
