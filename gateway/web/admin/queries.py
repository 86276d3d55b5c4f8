"""What the admin pages read: every query of the admin page, kept out of the views.

The bag list pages by keyset (id descending, `before=<id>`) and never counts the whole table,
so a page costs the same with a million bags as with a hundred.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import db
from gateway.domain import lifecycle
from gateway.domain.deadlines import DEFAULT_TZ
from gateway.models import (
    Bag,
    BagHistory,
    BagParcel,
    Device,
    Disagreement,
    ExceptionResolution,
    Handover,
    Parcel,
    Receipt,
    Record,
    Scan,
    Store,
    Weighing,
)
from gateway.services import bag_history, exceptions
from gateway.services.bag_list import WAITING, is_late

PER_PAGE = 50
LATE_SHOWN = 20
RECENT_SHOWN = 10
# Prefix search: every string that starts with q sorts between q and q + this character.
_TOP = "\U0010ffff"


def zone() -> ZoneInfo:
    # docs/domain.md "Time zone": the dashboard's "today" is China time, like the manual's.
    return ZoneInfo(DEFAULT_TZ)


def zone_name() -> str:
    """The zone the pages show times in, named by its offset (China has no daylight saving)."""
    offset = datetime(2000, 1, 1, tzinfo=zone()).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=zone())
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone())
    return start.astimezone(UTC), end.astimezone(UTC)


def today(now: datetime) -> date:
    return now.astimezone(zone()).date()


def late_clause(now: datetime):
    """Waiting bags whose pickup deadline has passed."""
    return (Bag.status.in_(WAITING)) & (Bag.pickup_due_at < now)


# --- bag list --------------------------------------------------------------------------------


@dataclass
class BagFilter:
    status: str = ""
    seller: str = ""
    day: date | None = None
    late: bool = False
    q: str = ""

    def clauses(self, now: datetime) -> list:
        where = []
        if self.status:
            where.append(Bag.status == self.status)
        if self.seller:
            where.append(Bag.seller_id == self.seller)
        if self.day:
            start, end = day_bounds(self.day)
            where += [Bag.created_at >= start, Bag.created_at < end]
        if self.late:
            where.append(late_clause(now))
        return where

    def args(self) -> dict[str, str]:
        """The filter as query arguments, for links to the next page and the CSV."""
        out = {"status": self.status, "seller": self.seller, "q": self.q}
        if self.day:
            out["date"] = self.day.isoformat()
        if self.late:
            out["late"] = "1"
        return {k: v for k, v in out.items() if v}


@dataclass
class BagPage:
    bags: list[Bag]
    next_before: int | None
    late_ids: set[int] = field(default_factory=set)


def _search_ids(dbs: Session, f: BagFilter, now: datetime, before: int | None, n: int) -> list[int]:
    """Ids of bags whose number or one of whose tracking numbers starts with f.q."""
    base = f.clauses(now) + ([Bag.id < before] if before else [])
    hi = f.q + _TOP
    by_bag = select(Bag.id).where(Bag.bag_no >= f.q, Bag.bag_no < hi, *base)
    by_parcel = (
        select(Bag.id)
        .join(BagParcel, BagParcel.bag_id == Bag.id)
        .where(BagParcel.tracking_no >= f.q, BagParcel.tracking_no < hi, *base)
    )
    ids: set[int] = set()
    for query in (by_bag, by_parcel):
        ids.update(dbs.scalars(query.order_by(Bag.id.desc()).limit(n)).all())
    return sorted(ids, reverse=True)[:n]


def bag_page(
    dbs: Session, f: BagFilter, now: datetime, before: int | None, per_page: int = PER_PAGE
) -> BagPage:
    if f.q:
        ids = _search_ids(dbs, f, now, before, per_page + 1)
        found = dbs.scalars(select(Bag).where(Bag.id.in_(ids)).order_by(Bag.id.desc()))
        bags, next_before = db.page_of(list(found), per_page)
    else:
        query = select(Bag).where(*f.clauses(now))
        bags, next_before = db.newest_first(dbs, query, Bag, before, per_page)
    return BagPage(bags, next_before, {b.id for b in bags if is_late(b, now)})


def iter_bags(dbs: Session, f: BagFilter, now: datetime, chunk: int = 1000) -> Iterator[Bag]:
    """Every bag the filter selects, newest first, read in keyset chunks (for the CSV)."""
    before = None
    while True:
        page = bag_page(dbs, f, now, before, chunk)
        yield from page.bags
        if page.next_before is None:
            return
        before = page.next_before
        dbs.expunge_all()


def sellers(dbs: Session) -> list[Store]:
    return list(dbs.scalars(select(Store).order_by(Store.seller_id).limit(500)))


# --- one bag ---------------------------------------------------------------------------------


@dataclass
class BagDetail:
    bag: Bag
    parcels: list[BagParcel]
    history: list[bag_history.Entry]  # status changes and revisions
    timeline: list[tuple[datetime, str, str, str]]  # (at, what, device, detail)
    weighings: list[Weighing]
    handover: Handover | None
    seller_name: str


def bag_by_number(dbs: Session, bag_no: str) -> Bag | None:
    return dbs.scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()


def bag_detail(dbs: Session, bag: Bag) -> BagDetail:
    timeline: list[tuple[datetime, str, str, str]] = []
    # The handheld's own records for this bag: open, each parcel, weighing, close.
    records = dbs.scalars(
        select(Record)
        .where(Record.device_id == bag.device_id, Record.body["bag"].as_string() == bag.bag_no)
        .order_by(Record.seq)
        .limit(2000)
    )
    for rec in records:
        body = rec.body
        detail = body.get("trk") or (f"{body['g']} g" if "g" in body else "")
        timeline.append((rec.occurred_at, rec.kind, rec.device_id, str(detail)))
    for scan in dbs.scalars(select(Scan).where(Scan.bag_id == bag.id)):
        detail = scan.driver_id + (f" ({scan.reason})" if scan.reason else "")
        timeline.append((scan.at, scan.kind, scan.device_id, detail))
    timeline.sort(key=lambda row: row[0])
    weighings = list(dbs.scalars(select(Weighing).where(Weighing.bag_id == bag.id)))
    handover = dbs.get(Handover, bag.handover_id) if bag.handover_id else None
    store = dbs.get(Store, bag.seller_id) if bag.seller_id else None
    return BagDetail(
        bag,
        list(bag.parcels),
        bag_history.entries(dbs, bag),
        timeline,
        weighings,
        handover,
        store.seller_name if store else "",
    )


# --- parcel lookup ---------------------------------------------------------------------------


@dataclass
class ParcelInfo:
    tracking_no: str
    parcel: Parcel | None
    bag: Bag | None


def parcel_lookup(dbs: Session, tracking_no: str) -> ParcelInfo | None:
    parcel = dbs.get(Parcel, tracking_no)
    member = dbs.scalars(
        select(BagParcel).where(BagParcel.tracking_no == tracking_no).order_by(BagParcel.id.desc())
    ).first()
    if parcel is None and member is None:
        return None
    return ParcelInfo(tracking_no, parcel, member.bag if member else None)


# --- devices, handovers ----------------------------------------------------------------------


def devices(dbs: Session) -> list[Device]:
    return list(dbs.scalars(select(Device).order_by(Device.online.desc(), Device.id)))


def handover_page(dbs: Session, before: int | None, per_page: int = PER_PAGE):
    return db.newest_first(dbs, select(Handover), Handover, before, per_page)


def receipt_for(dbs: Session, handover_id: int) -> Receipt | None:
    return dbs.scalars(select(Receipt).where(Receipt.handover_id == handover_id)).one_or_none()


# --- dashboard -------------------------------------------------------------------------------


def _hour_counts(dbs: Session, column, start: datetime, end: datetime) -> list[int]:
    counts = [0] * 24
    for (at,) in dbs.execute(select(column).where(column >= start, column < end)):
        counts[at.astimezone(zone()).hour] += 1
    return counts


def fingerprint(dbs: Session) -> tuple:
    """Changes whenever something on the dashboard may have changed; cheap (index ends)."""
    return (
        dbs.scalar(select(func.max(BagHistory.id))),
        dbs.scalar(select(func.max(Bag.id))),
        dbs.scalar(select(func.max(Handover.id))),
        dbs.scalar(select(func.max(Disagreement.id))),
        dbs.scalar(select(func.max(ExceptionResolution.id))),
        tuple(dbs.execute(select(Device.id).where(Device.online.is_(True))).scalars()),
    )


def dashboard(dbs: Session, now: datetime, label) -> dict:
    """The dashboard as plain data: the page renders it, the live stream sends it as JSON.

    `label(status)` names a status in the reader's language.
    """
    day = today(now)
    start, end = day_bounds(day)
    by_status = dict(
        dbs.execute(
            select(Bag.status, func.count())
            .where(Bag.created_at >= start, Bag.created_at < end)
            .group_by(Bag.status)
        ).all()
    )
    late = list(
        dbs.scalars(
            select(Bag).where(late_clause(now)).order_by(Bag.pickup_due_at).limit(LATE_SHOWN)
        )
    )
    late_count = dbs.scalar(select(func.count()).select_from(Bag).where(late_clause(now)))
    recent = list(dbs.scalars(select(Bag).order_by(Bag.id.desc()).limit(RECENT_SHOWN)))
    online = dbs.scalar(select(func.count()).select_from(Device).where(Device.online.is_(True)))
    total_devices = dbs.scalar(select(func.count()).select_from(Device))
    handovers_today = dbs.scalar(
        select(func.count()).select_from(Handover).where(Handover.at >= start, Handover.at < end)
    )
    hours = {
        "bagged": _hour_counts(dbs, Bag.closed_at, start, end),
        "picked_up": _hour_counts(dbs, Bag.picked_up_at, start, end),
        "arrived": _hour_counts(dbs, Bag.arrived_at, start, end),
    }
    open_exceptions = exceptions.count_label(exceptions.count(dbs, now, day))
    local = zone()

    def stamp(at: datetime | None) -> str:
        return at.astimezone(local).strftime("%m-%d %H:%M") if at else ""

    return {
        "day": day.isoformat(),
        "updated": now.astimezone(local).strftime("%H:%M:%S"),
        "by_status": [
            {"status": s, "label": label(s), "count": by_status[s]}
            for s in lifecycle.STATUSES
            if by_status.get(s)
        ],
        "total_today": sum(by_status.values()),
        "late": [
            {
                "bag_no": b.bag_no,
                "status": label(b.status),
                "due": stamp(b.pickup_due_at),
                "late_min": int((now - b.pickup_due_at).total_seconds() // 60),
            }
            for b in late
        ],
        "late_count": late_count,
        "exceptions_count": open_exceptions,
        "recent": [
            {
                "bag_no": b.bag_no,
                "status": label(b.status),
                "parcels": b.parcel_count,
                "weight_g": b.weight_g,
                "closed": stamp(b.closed_at),
            }
            for b in recent
        ],
        "devices": {"online": online, "total": total_devices},
        "handovers_today": handovers_today,
        "hours": hours,
        "hours_max": max(1, *(max(v) for v in hours.values())),
    }
