"""Bags and parcels in transit too long: picked up more than 72 h ago and still not at the
sorting center (FAQ 9: bags reach it 24-72 h after the pickup; domain.deadlines.TRANSIT_MAX).

A parcel is in transit while its bag is picked_up (not arrived) and the hub has not signed
for the parcel itself. The API's parcel view flags it; `overdue_bags` is the query the admin
exceptions page lists.
"""

from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from gateway.domain import deadlines, lifecycle
from gateway.models import Bag, Parcel


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """Bags picked up before now - 72 h that have not arrived (an index on picked_up_at)."""
    return (
        (Bag.status == lifecycle.PICKED_UP)
        & (Bag.picked_up_at < now - deadlines.TRANSIT_MAX)
        & Bag.arrived_at.is_(None)
    )


def overdue_bags(session: Session, now: datetime, limit: int = 200) -> list[Bag]:
    """Bags in transit past 72 h, the longest first."""
    return list(
        session.scalars(
            select(Bag).where(overdue_clause(now)).order_by(Bag.picked_up_at, Bag.id).limit(limit)
        )
    )


def parcel_overdue(parcel: Parcel, bag: Bag | None, now: datetime) -> bool:
    """True when the parcel's bag is in transit past 72 h and the hub has not received it."""
    if bag is None or parcel.received_at is not None or bag.status != lifecycle.PICKED_UP:
        return False
    return deadlines.transit_overdue(bag.picked_up_at, bag.arrived_at is not None, now)
