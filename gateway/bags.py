"""Bag actions taken at the gateway: cancel, the system's close of stale bags, manual events."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import settings
from gateway.domain import lifecycle
from gateway.models import Bag
from gateway.registry import move

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
    scan is recorded lifecycle refuses it (CANCEL_AFTER_PICKUP, manual FAQ 8).
    """
    move(session, bag, lifecycle.CANCEL, at, why or "cancel requested", actor)
    move(session, bag, lifecycle.CANCEL_CONFIRMED, at, "cancelled before pickup", actor)


def close_after(session: Session) -> timedelta:
    return timedelta(hours=float(settings.of(session)["CLOSE_AFTER_HOURS"]))


def close_stale(session: Session, now: datetime, limit: int = 1000) -> list[str]:
    """Close bags still waiting for their driver after CLOSE_AFTER_HOURS; returns their numbers.

    Run by `flask --app gateway close-stale-bags` (e.g. hourly from cron or a systemd
    timer). A bag's age counts from its creation (domain.lifecycle.due_for_close).
    """
    after = close_after(session)
    candidates = session.scalars(
        select(Bag)
        .where(Bag.status.in_(sorted(lifecycle.WAITING_FOR_PICKUP)), Bag.created_at <= now - after)
        .order_by(Bag.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    closed = []
    for bag in candidates:
        if not lifecycle.due_for_close(bag.status, bag.created_at, now, after):
            continue
        hours = f"{after.total_seconds() / 3600:g}"
        move(session, bag, lifecycle.CLOSE, now, f"not picked up within {hours} h", "system")
        move(session, bag, lifecycle.CLOSE_CONFIRMED, now, "closed by the system", "system")
        closed.append(bag.bag_no)
    return closed
