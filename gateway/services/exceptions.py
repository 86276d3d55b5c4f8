"""The exceptions queue: every open problem a dispatcher must act on, what to do, and resolving it.

An exception is named by (kind, ref). The queue reads them from where they already live: the
ingest's disagreements (parcels held out of a bag or in two bags, a handover that counted an
unknown bag, weights that disagree...), bags late for pickup, bags the hub could not sign or
signed with an exception, bags in transit too long, and handhelds whose status shows a clock
off, a long backlog or an old config. Resolving one records who, when and why (exception_resolutions); a
disagreement also gets its resolved_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from gateway import db
from gateway.domain import bag_rules, deadlines, lifecycle
from gateway.errors import Refused, bad_field
from gateway.ingest import registry
from gateway.models import Bag, Device, Disagreement, ExceptionResolution, Handover, User
from gateway.services import audit, devices
from gateway.services.bag_list import WAITING

DISAGREEMENT = "disagreement"
LATE_PICKUP = "late_pickup"
IN_TRANSIT = "in_transit"
CLOCK_OFF = "clock_off"
BACKLOG = "backlog"
CONFIG_BEHIND = "config_behind"
DEVICE_KINDS = (CLOCK_OFF, BACKLOG, CONFIG_BEHIND)
# Arrival exceptions are the hub's two bag statuses, named as the statuses are.
ARRIVAL = (lifecycle.RECEIVED_EXCEPTION, lifecycle.RECEIPT_FAILED)
KINDS = (DISAGREEMENT, LATE_PICKUP, *ARRIVAL, IN_TRANSIT, *DEVICE_KINDS)

# (product choice) records waiting on a handheld: a shift's worth is normal while it is out of
# Wi-Fi; more than this means it has not synced for a long time.
BACKLOG_LIMIT = 500
# (product choice) how long an online handheld may report an older config version than it was
# sent (its status's "behind_since", gateway/ingest/ledger.py). The config feed resends what is
# missing 1.5 s after such a status and retries every 5 s, with a full config when the deltas
# are gone (gateway/ingest/config_feed.py); the handheld reports its version every 60 s. Still
# behind after 5 minutes (five statuses, dozens of resends) means it does not take its configs
# and checks scans against old data (docs/protocol.md, "Config versions and deltas").
CONFIG_BEHIND_AFTER = timedelta(minutes=5)
SHOWN_PER_KIND = 100
# The count shown in the menu and on the dashboard stops here ("1000+"): it says how much there
# is to do, and each kind's count then costs at most this many index lookups, whatever the
# history holds (a year of bags received with an exception, say).
COUNT_CAP = 1000

# What to do, per kind (English; gateway/web/i18n.py has the Chinese).
ADVICE = {
    LATE_PICKUP: "Call the pickup company about the driver; cancel the bag if the seller no "
    "longer ships it.",
    lifecycle.RECEIVED_EXCEPTION: "The weight at the hub differs from the weight at bagging: "
    "check the bag's contents with the hub and the seller.",
    lifecycle.RECEIPT_FAILED: "The hub could not sign for the bag: find it at the hub, then "
    "retry the receipt on the bag's page.",
    IN_TRANSIT: "Picked up more than 72 hours ago and not arrived: ask the driver and the hub "
    "where the bag is.",
    CLOCK_OFF: "The handheld's clock is wrong: connect it to Wi-Fi so it sets its time, and "
    "check the times of its recent bags.",
    BACKLOG: "The handheld has many records not sent: bring it into Wi-Fi range and keep it on "
    "until its backlog is zero.",
    CONFIG_BEHIND: "The handheld is online but has not taken the gateway's latest changes, so it "
    "checks scans against old data: restart it in Wi-Fi range; if it stays behind, check its "
    "firmware version and free flash, or swap it.",
}
# What to do about a disagreement, by its code (gateway/ingest/registry.py, protocol/rules.py).
HELD_OUT = frozenset(bag_rules.MESSAGES) - {bag_rules.IN_OTHER_BAG} | {registry.UNKNOWN_PARCEL}
ADVICE_HELD_OUT = (
    "The gateway held this parcel out of the bag: take it out, fix its data (import it, link "
    "its store) and bag it again."
)
ADVICE_TWO_BAGS = (
    "The parcel is in two bags: open both, keep it in one and remove it from the other on the "
    "handheld."
)
ADVICE_UNKNOWN_BAG = (
    "The handover counted a bag this gateway does not know: check the bag number on the "
    "receipt with the seller and the driver."
)
ADVICE_UNKNOWN_RECORD_BAG = (
    "A handheld's record names a bag this gateway has not heard of: it is kept and applied when "
    "the bag's own records arrive. If they do not, sync the handheld that opened the bag."
)
ADVICE_HANDOVER = "Check the handover with the seller and the driver; reprint its receipt."
ADVICE_ARRIVAL = "Reweigh the bag at the hub and record the receipt on the bag's page."
ADVICE_DRIVER = "Add the driver under Couriers, or check the badge the driver scanned."
ADVICE_STORE = "Register the store under Sellers and link it to the seller's account."
ADVICE_OTHER = "Look at the bag and the handheld's records; resolve once it is settled."
_DISAGREEMENT_ADVICE = {
    bag_rules.IN_OTHER_BAG: ADVICE_TWO_BAGS,
    registry.UNKNOWN_BAG: ADVICE_UNKNOWN_RECORD_BAG,  # ADVICE_UNKNOWN_BAG from a handover
    registry.HANDOVER_BAG: ADVICE_HANDOVER,
    registry.BAD_HANDOVER: ADVICE_HANDOVER,
    registry.BAD_SIGNATURE: ADVICE_HANDOVER,
    registry.HANDOVER_DATE: ADVICE_HANDOVER,
    registry.ARRIVAL_VERDICT: ADVICE_ARRIVAL,
    registry.NO_BAGGING_WEIGHT: ADVICE_ARRIVAL,
    registry.ARRIVAL_BEFORE_PICKUP: ADVICE_ARRIVAL,
    registry.UNKNOWN_DRIVER: ADVICE_DRIVER,
    registry.UNKNOWN_STORE: ADVICE_STORE,
}


# Every code with advice of its own, and one that falls back to ADVICE_OTHER.
ADVICE_CODES = (*_DISAGREEMENT_ADVICE, *sorted(HELD_OUT), "RECORD_NOT_APPLIED")


def advice_for(code: str, of_handover: bool = False) -> str:
    if code in HELD_OUT:
        return ADVICE_HELD_OUT
    if code == registry.UNKNOWN_BAG and of_handover:
        return ADVICE_UNKNOWN_BAG
    return _DISAGREEMENT_ADVICE.get(code, ADVICE_OTHER)


@dataclass(frozen=True)
class OpenException:
    kind: str
    ref: str
    at: datetime | None
    code: str  # the disagreement's code, or the kind
    detail: str  # what the gateway recorded (device text: shown escaped, never translated)
    advice: str  # English; the page translates it
    bag_no: str | None = None
    device_id: str | None = None
    handover_id: int | None = None  # the handover whose record raised it


def _unresolved(kind: str, ref) -> object:
    return ~exists().where(ExceptionResolution.kind == kind, ExceptionResolution.ref == ref)


def _late(now: datetime):
    return and_(
        Bag.status.in_(WAITING), Bag.pickup_due_at < now, _unresolved(LATE_PICKUP, Bag.bag_no)
    )


def _arrival(status: str):
    return and_(Bag.status == status, _unresolved(status, Bag.bag_no))


def _transit(now: datetime):
    """transit.overdue_clause's bags (picked up over 72 h ago, not arrived), written so that
    SQLite searches the status index: with its `arrived_at IS NULL` SQLite took another
    index and the count cost 56 ms on every page with a million bags, this one 0.5 ms. A
    picked_up bag has no arrival yet (domain.lifecycle), so both select the same bags."""
    return and_(
        Bag.status == lifecycle.PICKED_UP,
        Bag.picked_up_at < now - deadlines.TRANSIT_MAX,
        _unresolved(IN_TRANSIT, Bag.bag_no),
    )


def device_ref(device_id: str, day: date) -> str:
    """(product choice) a handheld's problem resolved today comes back tomorrow if it stays."""
    return f"{device_id}@{day.isoformat()}"


def _device_problems(session: Session, now: datetime, day: date) -> list[tuple[str, Device]]:
    resolved = set(
        session.execute(
            select(ExceptionResolution.kind, ExceptionResolution.ref).where(
                ExceptionResolution.kind.in_(DEVICE_KINDS),
                ExceptionResolution.ref.like(f"%@{day.isoformat()}"),
            )
        ).tuples()
    )
    out = []
    for device in session.scalars(select(Device).order_by(Device.id)):
        status = device.status or {}
        ref = device_ref(device.id, day)
        if status.get("clock_off") and (CLOCK_OFF, ref) not in resolved:
            out.append((CLOCK_OFF, device))
        backlog = status.get("backlog")
        if isinstance(backlog, int) and backlog > BACKLOG_LIMIT and (BACKLOG, ref) not in resolved:
            out.append((BACKLOG, device))
        since = devices.config_state(device).behind_since
        if since and now - since > CONFIG_BEHIND_AFTER and (CONFIG_BEHIND, ref) not in resolved:
            out.append((CONFIG_BEHIND, device))
    return out


def count(session: Session, now: datetime, day: date) -> int:
    """How many exceptions are open, at most COUNT_CAP + 1 (shown as "1000+")."""

    def capped(query) -> int:
        return session.scalar(
            select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery())
        )

    total = capped(select(Disagreement.id).where(Disagreement.resolved_at.is_(None)))
    for where in (_late(now), _transit(now), *(_arrival(s) for s in ARRIVAL)):
        total += capped(select(Bag.id).where(where))
    return min(total + len(_device_problems(session, now, day)), COUNT_CAP + 1)


def count_label(n: int) -> str:
    return f"{COUNT_CAP}+" if n > COUNT_CAP else str(n)


def queue(session: Session, now: datetime, day: date) -> list[OpenException]:
    """The open exceptions, oldest problem first within each kind (at most SHOWN_PER_KIND each)."""
    out: list[OpenException] = []
    disagreements = session.scalars(
        select(Disagreement)
        .where(Disagreement.resolved_at.is_(None))
        .order_by(Disagreement.id)
        .limit(SHOWN_PER_KIND)
    ).all()
    # A handover that counted an unknown bag (issue 15): linked to its handover page.
    handover_of = dict(
        session.execute(
            select(Handover.record_id, Handover.id).where(
                Handover.record_id.in_({d.record_id for d in disagreements if d.record_id})
            )
        ).all()
    )
    for d in disagreements:
        handover_id = handover_of.get(d.record_id)
        out.append(
            OpenException(
                DISAGREEMENT,
                str(d.id),
                d.at,
                d.code,
                d.message,
                advice_for(d.code, handover_id is not None),
                d.bag_no,
                d.device_id,
                handover_id,
            )  # fmt: skip
        )
    # The most overdue first for late pickups; otherwise the oldest bag first, by id. Each order
    # is one SQLite follows from the status index without reading every bag (with a million
    # bags, ordering late ones by id read the whole table: 110 ms; in transit by pickup: 270).
    bag_kinds = [(LATE_PICKUP, _late(now), Bag.pickup_due_at), (IN_TRANSIT, _transit(now), Bag.id)]
    bag_kinds += [(s, _arrival(s), Bag.id) for s in ARRIVAL]
    for kind, where, order in bag_kinds:
        for bag in session.scalars(select(Bag).where(where).order_by(order).limit(SHOWN_PER_KIND)):
            at = {LATE_PICKUP: bag.pickup_due_at, IN_TRANSIT: bag.picked_up_at}.get(
                kind, bag.arrived_at
            )
            detail = bag.status if kind != LATE_PICKUP else f"{bag.status}, {bag.seller_id or ''}"
            out.append(
                OpenException(
                    kind, bag.bag_no, at, kind, detail, ADVICE[kind], bag.bag_no, bag.device_id
                )
            )
    for kind, device in _device_problems(session, now, day):
        status = device.status or {}
        at = device.last_seen
        if kind == CLOCK_OFF:
            detail = f"clock {status.get('clock_skew_s')} s off"
        elif kind == BACKLOG:
            detail = f"{status.get('backlog')} records not sent"
        else:
            at = devices.config_state(device).behind_since
            detail = f"config version {status.get('s')}, sent {device.config_version}"
        out.append(
            OpenException(
                kind,
                device_ref(device.id, day),
                at,
                kind,
                detail,
                ADVICE[kind],
                None,
                device.id,
            )  # fmt: skip
        )
    return out


def resolve(
    session: Session, user: User, kind: str, ref: str, why: str, now: datetime, day: date
) -> None:
    """Mark one open exception resolved, with the audit entry; Refused when it is not open."""
    if kind not in KINDS:
        raise bad_field("kind", f"kind must be one of {', '.join(KINDS)}")
    why = why.strip()
    if not why or len(why) > 500 or not db.storable(why):
        raise bad_field("why", "say why, in 1-500 characters")
    before: dict = {"kind": kind, "ref": ref, "open": True}
    if kind == DISAGREEMENT:
        row = session.get(Disagreement, int(ref)) if ref.isdigit() else None
        if row is None or row.resolved_at is not None:
            raise Refused(404, "NOT_OPEN", "no such open exception", "ref")
        before.update(code=row.code, message=row.message)
        row.resolved_at = now
    elif kind in DEVICE_KINDS:
        if ref not in {
            device_ref(d.id, day) for k, d in _device_problems(session, now, day) if k == kind
        }:
            raise Refused(404, "NOT_OPEN", "no such open exception", "ref")
    else:
        where = {LATE_PICKUP: _late(now), IN_TRANSIT: _transit(now)}.get(kind)
        if where is None:
            where = _arrival(kind)
        bag = session.scalars(select(Bag).where(where, Bag.bag_no == ref)).one_or_none()
        if bag is None:
            raise Refused(404, "NOT_OPEN", "no such open exception", "ref")
        before.update(status=bag.status)
    session.add(
        ExceptionResolution(kind=kind, ref=ref, resolved_at=now, resolved_by=user.username, why=why)
    )
    audit.record(session, user, "resolve_exception", f"{kind} {ref}", before,
                 {"kind": kind, "ref": ref, "open": False, "why": why}, now)  # fmt: skip
    session.flush()


def resolutions(session: Session, limit: int = 50) -> list[ExceptionResolution]:
    """The latest resolutions, newest first (shown under the queue)."""
    return list(
        session.scalars(
            select(ExceptionResolution).order_by(ExceptionResolution.id.desc()).limit(limit)
        )
    )
