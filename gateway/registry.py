"""The bag registry: applies device records (already validated by firmware.app.wire) to bags.

The ingest applies a device's records strictly in sequence, so a record must never raise out
of `apply` for a domain reason: that would block the device forever. A record the gateway
cannot apply, or a device decision its re-check does not share, becomes a Disagreement on the
bag (the device's fact is kept as sent, in `records`); a database error still raises, so the
ingest retries the whole batch.

Every handler checks first and writes afterwards, so a refusal leaves nothing half-applied.

Handlers read bags, memberships and parcels through a Batch (gateway/registry_batch.py):
the ingest applies a run of a device's records under one (`batch()`), prefetched in a few
queries; a record applied on its own gets a Batch of its own.
"""

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from firmware.app import rules, wire
from gateway import drivers as driver_keys
from gateway import settings
from gateway.domain import arrival, bag_rules, deadlines, lifecycle, receipts
from gateway.models import (
    Account,
    Address,
    Bag,
    BagHistory,
    BagParcel,
    Device,
    Disagreement,
    Driver,
    Handover,
    Record,
    Scan,
    Store,
    Weighing,
)
from gateway.models import Receipt as ReceiptRow
from gateway.registry_batch import Batch

log = logging.getLogger(__name__)

# Codes of disagreements the registry adds to the rules.* refusal codes.
UNKNOWN_PARCEL = "UNKNOWN_PARCEL"  # not imported, and the setting says refuse
UNKNOWN_BAG = "UNKNOWN_BAG"
UNKNOWN_DRIVER = "UNKNOWN_DRIVER"
UNKNOWN_STORE = "UNKNOWN_STORE"
BAG_NOT_IN_RANGE = "BAG_NOT_IN_RANGE"  # bag number outside the device's range
BAG_OF_OTHER_DEVICE = "BAG_OF_OTHER_DEVICE"
BAG_NOT_OPEN = "BAG_NOT_OPEN"  # bagging record for a bag already closed
NOT_IN_BAG = "NOT_IN_BAG"  # removal of a parcel the bag does not hold
PARCEL_COUNT = "PARCEL_COUNT"  # the device's count at close differs from ours
BAD_SIGNATURE = "BAD_SIGNATURE"
BAD_HANDOVER = "BAD_HANDOVER"
HANDOVER_BAG = "HANDOVER_BAG"  # a handed-over bag not picked up, or of another seller
ARRIVAL_VERDICT = "ARRIVAL_VERDICT"  # device's ok/not ok differs from the gateway's check
NO_BAGGING_WEIGHT = "NO_BAGGING_WEIGHT"
BAD_REASON = "BAD_REASON"
DEVICE_ROLE = "DEVICE_ROLE"


class Refusal(Exception):
    """A record (or part of one) the gateway does not accept; becomes a Disagreement."""

    def __init__(self, code: str, message: str, bag: Bag | None = None, trk: str | None = None):
        super().__init__(message)
        self.code, self.message, self.bag, self.trk = code, message, bag, trk


@dataclass
class Context:
    session: Session
    device: Device
    record: Record
    at: datetime  # the device's time of the action
    batch: Batch

    @property
    def actor(self) -> str:
        return f"device:{self.device.id}"

    def disagree(
        self, code: str, message: str, bag: Bag | None = None, trk: str | None = None
    ) -> None:
        record_disagreement(
            self.session, bag, code, message, self.at, self.device.id, self.record.id, trk
        )


_BATCH = "bagscan.registry.batch"  # session.info key of the current run's Batch


@contextmanager
def batch(
    session: Session, device: Device, records: Sequence[Record], run: Batch
) -> Iterator[Batch]:
    """Apply a run of the device's records through `run`, a Batch that earlier runs in this
    transaction may have loaded (the ledger prefetches the next records of many devices at
    once): what it lacks is prefetched, memberships are written once at the end.

    Use inside a savepoint: if a record raises, roll back, `forget()` the Batch and apply
    the records one by one.
    """
    run.device = device
    run.prefetch(r.body for r in records)
    session.info[_BATCH] = run
    try:
        yield run
        run.flush()
    finally:
        session.info.pop(_BATCH, None)


def apply(session: Session, device: Device, record: Record) -> None:
    run = session.info.get(_BATCH)
    own = run is None or run.device is not device
    if own:
        run = Batch(session, device)
        run.prefetch([record.body])
    ctx = Context(session, device, record, record.occurred_at, run)
    try:
        _HANDLERS[record.kind](ctx, record.body)
    except Refusal as r:
        ctx.disagree(r.code, r.message, r.bag, r.trk)
    except lifecycle.TransitionRefused as r:
        ctx.disagree(r.code, r.message)
    except (ValueError, KeyError, TypeError) as err:  # a record we cannot read: keep going
        log.warning("record %s/%s not applied: %s", device.id, record.seq, err)
        ctx.disagree("RECORD_NOT_APPLIED", f"{record.kind} not applied: {err}")
    if own:
        run.flush()


def record_disagreement(
    session: Session,
    bag: Bag | None,
    code: str,
    message: str,
    at: datetime,
    device_id: str | None = None,
    record_id: int | None = None,
    trk: str | None = None,
) -> None:
    session.add(
        Disagreement(
            bag=bag,
            device_id=device_id,
            record_id=record_id,
            at=at,
            code=code,
            message=message,
            tracking_no=trk,
        )
    )
    if bag is not None:
        bag.disagreement_count = (bag.disagreement_count or 0) + 1


def set_status(session: Session, bag: Bag, to: str, at: datetime, cause: str, actor: str) -> None:
    session.add(
        BagHistory(bag=bag, at=at, from_status=bag.status, to_status=to, cause=cause, actor=actor)
    )
    bag.status = to


def move(session: Session, bag: Bag, event: str, at: datetime, cause: str, actor: str) -> str:
    """Apply a lifecycle event (lifecycle.transition decides; TransitionRefused if not allowed)."""
    to = lifecycle.transition(bag.status, event)
    set_status(session, bag, to, at, f"{event}: {cause}", actor)
    return to


def find_bag(session: Session, bag_no: str) -> Bag | None:
    return session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()


def bag_of_parcel(session: Session, tracking_no: str) -> Bag | None:
    """The bag a parcel was last put into according to bagging data, or None."""
    return session.scalars(
        select(Bag)
        .join(BagParcel, BagParcel.bag_id == Bag.id)
        .where(BagParcel.tracking_no == tracking_no)
        .order_by(BagParcel.id.desc())
        .limit(1)
    ).first()


def _open_bag(ctx: Context, bag_no: str) -> Bag:
    """The bag, created (submitted) on its first record, with the device's account and address."""
    bag = ctx.batch.bag(bag_no)
    if bag is not None:
        return bag
    device = ctx.device
    address = (
        ctx.session.get(Address, device.pickup_address_id) if device.pickup_address_id else None
    )
    bag = Bag(
        bag_no=bag_no,
        device_id=device.id,
        status=lifecycle.SUBMITTED,
        opened_at=ctx.at,
        parcel_count=0,
        account_id=device.account_id,
        pickup_address_id=address.id if address else None,
        service=address.service if address else None,
        disagreement_count=0,
    )
    ctx.session.add(bag)
    ctx.session.add(
        BagHistory(
            bag=bag,
            at=ctx.at,
            from_status=None,
            to_status=lifecycle.SUBMITTED,
            cause="bag opened on the handheld",
            actor=ctx.actor,
        )
    )
    ctx.session.flush()
    ctx.batch.opened(bag)
    serial = wire.bag_serial(bag_no)
    if serial is None or not device.bag_range_lo <= serial <= device.bag_range_hi:
        ctx.disagree(
            BAG_NOT_IN_RANGE,
            f"bag number {bag_no} is outside the device's range "
            f"{device.bag_range_lo}..{device.bag_range_hi}",
            bag,
        )
    return bag


def _bagging_bag(ctx: Context, bag_no: str) -> Bag:
    """The bag for a bagging record: opened by this device and still being filled."""
    bag = _open_bag(ctx, bag_no)
    if bag.device_id != ctx.device.id:
        raise Refusal(
            BAG_OF_OTHER_DEVICE, f"bag {bag_no} was opened on device {bag.device_id}", bag
        )
    if bag.status != lifecycle.SUBMITTED:
        raise Refusal(
            BAG_NOT_OPEN, f"{ctx.record.kind} for bag {bag_no}, which is already {bag.status}", bag
        )
    return bag


def _known_bag(ctx: Context, bag_no: str) -> Bag:
    bag = ctx.batch.bag(bag_no)
    if bag is None:
        raise Refusal(UNKNOWN_BAG, f"{ctx.record.kind} of bag {bag_no}, unknown to the gateway")
    return bag


# --- bagging ------------------------------------------------------------------------------


def _bag_open(ctx: Context, rec: dict) -> None:
    bag = ctx.batch.bag(rec["bag"])
    if bag is not None and bag.device_id != ctx.device.id:
        raise Refusal(
            BAG_OF_OTHER_DEVICE, f"bag {rec['bag']} was opened on device {bag.device_id}", bag
        )
    _open_bag(ctx, rec["bag"])


def _parcel(ctx: Context, rec: dict) -> None:
    trk = rec["trk"]
    bag = _bagging_bag(ctx, rec["bag"])
    members = ctx.batch.members(bag)
    if trk in members:
        raise Refusal(rules.DUPLICATE, bag_rules.MESSAGES[rules.DUPLICATE], bag, trk)
    parcel = ctx.batch.parcel(trk)
    if parcel is None:
        if settings.of(ctx.session).get("UNKNOWN_PARCEL") == "refuse":
            ctx.disagree(UNKNOWN_PARCEL, f"parcel {trk} was never imported", bag, trk)
    else:
        _recheck_parcel(ctx, bag, parcel, members.keys())
    ctx.batch.add_member(bag, trk, ctx.at)
    bag.parcel_count = len(members)
    if bag.seller_id is None and parcel is not None:
        bag.seller_id = parcel.seller_id


def _recheck_parcel(ctx: Context, bag: Bag, parcel: Row, members: Collection[str]) -> None:
    """The gateway's own verdict on the device's add (domain.bag_rules), kept if it differs."""
    other = ctx.batch.holder(parcel.tracking_no)
    hubs = ctx.batch.hubs(bag)
    linked = (
        ctx.batch.linked_sellers(bag.account_id) if bag.account_id else {parcel.seller_id}
    )  # a device bound to no account: no store links to check
    facts = bag_rules.ParcelFacts(
        tracking_no=parcel.tracking_no,
        seller_id=parcel.seller_id,
        status=parcel.status,
        hub=parcel.hub,
        sea_big_item=parcel.sea_big_item,
        in_bag=other.bag_no if other is not None and other.status not in _RELEASED else None,
    )
    code = bag_rules.check_add(
        facts,
        bag_rules.BagFacts(
            bag_no=bag.bag_no, tracking_nos=members, hubs=hubs, linked_seller_ids=linked
        ),
    )
    if code is not None:
        ctx.disagree(code, bag_rules.MESSAGES[code], bag, parcel.tracking_no)


# A parcel in a bag with one of these statuses is free to go into another bag.
_RELEASED = frozenset({lifecycle.CANCELLED, lifecycle.CLOSED})


def _parcel_remove(ctx: Context, rec: dict) -> None:
    bag = _bagging_bag(ctx, rec["bag"])
    members = ctx.batch.members(bag)
    if rec["trk"] not in members:
        raise Refusal(
            NOT_IN_BAG, f"parcel {rec['trk']} is not in bag {bag.bag_no}", bag, rec["trk"]
        )
    ctx.batch.remove_member(bag, rec["trk"])
    bag.parcel_count = len(members)


def _weigh(ctx: Context, rec: dict) -> None:
    bag = _bagging_bag(ctx, rec["bag"])
    bag.weight_g = rec["g"]


def _bag_close(ctx: Context, rec: dict) -> None:
    session = ctx.session
    bag = _bagging_bag(ctx, rec["bag"])
    dims = rec["dims"]
    if len(dims) != 3 or not all(isinstance(d, int | float) and d >= 0 for d in dims):
        dims = None
        ctx.disagree(rules.OVERSIZE, "bag_close dims are not three sides in cm", bag)
    # Re-check the device's limits (firmware/app/rules.py, the one definition).
    count = len(ctx.batch.members(bag))
    if rec["n"] != count:
        ctx.disagree(PARCEL_COUNT, f"device counts {rec['n']} parcels, the gateway {count}", bag)
    if count > rules.MAX_PARCELS:
        ctx.disagree(rules.BAG_FULL, f"{count} parcels, more than {rules.MAX_PARCELS}", bag)
    if not rules.weight_ok(rec["g"]):
        ctx.disagree(rules.OVERWEIGHT, bag_rules.MESSAGES[rules.OVERWEIGHT], bag)
    if dims is not None and not rules.size_ok(dims):
        ctx.disagree(rules.OVERSIZE, bag_rules.MESSAGES[rules.OVERSIZE], bag)
    bag.weight_g = rec["g"]
    bag.dims_cm = dims
    bag.closed_at = ctx.at
    session.add(
        Weighing(
            bag_id=bag.id,
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind="bagging",
            grams=rec["g"],
            at=ctx.at,
        )
    )
    # The handheld numbers bags from the range we assigned it, so a closed bag has its number
    # and its label: both steps happen at once.
    move(session, bag, lifecycle.ROUTE, ctx.at, "bag closed on the handheld", ctx.actor)
    move(
        session,
        bag,
        lifecycle.LABEL_ASSIGNED,
        ctx.at,
        "bag number from the device's range",
        ctx.actor,
    )
    if bag.service in deadlines.SERVICES:
        bag.pickup_due_at = deadlines.pickup_due(ctx.at, bag.service, _zone(session, bag))


def _zone(session: Session, bag: Bag) -> str:
    account = session.get(Account, bag.account_id) if bag.account_id else None
    return account.tz if account else deadlines.DEFAULT_TZ


# --- pickup -------------------------------------------------------------------------------


def _driver(ctx: Context, driver_id: str, bag: Bag | None = None) -> Driver | None:
    driver = ctx.session.get(Driver, driver_id)
    if driver is None or not driver.active:
        ctx.disagree(UNKNOWN_DRIVER, f"driver {driver_id} is unknown or inactive", bag)
        return None
    return driver


def _signin(ctx: Context, rec: dict) -> None:
    _driver(ctx, rec["drv"])


def _pickup(ctx: Context, rec: dict) -> None:
    """The driver scanned the bag: its device time is the bag's pickup time (domain.md)."""
    session = ctx.session
    bag = _known_bag(ctx, rec["bag"])
    _driver(ctx, rec["drv"], bag)
    session.add(
        Scan(
            bag_id=bag.id,
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind="pickup",
            driver_id=rec["drv"],
            at=ctx.at,
        )
    )
    try:
        lifecycle.transition(bag.status, lifecycle.PICKUP_SCAN)
    except lifecycle.TransitionRefused as r:
        raise Refusal(r.code, f"pickup scan kept, status unchanged: {r.message}", bag) from None
    move(session, bag, lifecycle.PICKUP_SCAN, ctx.at, f"scanned by driver {rec['drv']}", ctx.actor)
    bag.picked_up_at = ctx.at
    bag.driver_id = rec["drv"]
    bag.pickup_refused_reason = None


def _pickup_refuse(ctx: Context, rec: dict) -> None:
    session = ctx.session
    bag = _known_bag(ctx, rec["bag"])
    if rec["why"] not in wire.REFUSE_REASONS:
        ctx.disagree(BAD_REASON, f"refusal reason {rec['why']!r} not in {wire.REFUSE_REASONS}", bag)
    session.add(
        Scan(
            bag_id=bag.id,
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind="refuse",
            driver_id=rec["drv"],
            reason=rec["why"][:16],
            at=ctx.at,
        )
    )
    if bag.status == lifecycle.PICKED_UP and (
        bag.handover_id is not None or bag.driver_id not in (None, rec["drv"])
    ):
        # Only the driver who scanned it, before handing over, can take the scan back.
        raise Refusal(
            lifecycle.ILLEGAL_TRANSITION,
            "refusal kept, status unchanged: the bag was handed over or scanned by another driver",
            bag,
        )
    try:
        lifecycle.transition(bag.status, lifecycle.PICKUP_REFUSED)
    except lifecycle.TransitionRefused as r:
        raise Refusal(r.code, f"refusal kept, status unchanged: {r.message}", bag) from None
    cause = f"refused by driver {rec['drv']}: {rec['why']}"
    move(session, bag, lifecycle.PICKUP_REFUSED, ctx.at, cause, ctx.actor)
    bag.pickup_refused_reason = rec["why"][:16]
    bag.picked_up_at = None  # a refused bag was not picked up; the scan stays in the timeline


def signed_fields(
    session: Session, seller_id: str, pickup_date: date, bag_numbers: list[str], driver: Driver
) -> list[receipts.HandoverFields]:
    """The handover fields a device may have signed, most likely first.

    The device config lists stores by id only, so a handheld that does not know the seller's
    name signs with the seller id in its place (docs/api.md, "Handover signatures").
    """
    store = session.get(Store, seller_id)
    names = [store.seller_name] if store is not None else []
    names.append(seller_id)
    return [
        receipts.HandoverFields(
            pickup_date=pickup_date,
            seller_id=seller_id,
            seller_name=name,
            bag_numbers=tuple(bag_numbers),
            driver_id=driver.id,
            driver_name=driver.name,
        )
        for name in dict.fromkeys(names)
    ]


def _handover(ctx: Context, rec: dict) -> None:
    """A handover signed by the driver: the handover, and its receipt when the signature holds."""
    session = ctx.session
    existing = session.scalars(
        select(Handover).where(
            Handover.device_id == ctx.device.id, Handover.device_handover_id == rec["hid"]
        )
    ).first()
    if existing is not None:
        raise Refusal(BAD_HANDOVER, f"handover {rec['hid']} was already recorded")
    try:
        pickup_date = date.fromisoformat(rec["date"])
    except ValueError:
        raise Refusal(BAD_HANDOVER, f"handover date {rec['date']!r} is not YYYY-MM-DD") from None
    bag_numbers = rec["bags"]
    if not bag_numbers or not all(wire.text_ok(b) for b in bag_numbers):
        raise Refusal(BAD_HANDOVER, "handover bags must be a non-empty list of bag numbers")
    if session.get(Store, rec["seller"]) is None:
        ctx.disagree(UNKNOWN_STORE, f"seller {rec['seller']} is not a known store")
    driver = _driver(ctx, rec["drv"])
    fields = None
    if driver is not None:
        key = driver_keys.key_of(driver, settings.secret(session))
        fields = next(
            (
                f
                for f in signed_fields(session, rec["seller"], pickup_date, bag_numbers, driver)
                if receipts.verify_driver_signature(f, rec["sig"], key)
            ),
            None,
        )
    handover = Handover(
        device_id=ctx.device.id,
        device_handover_id=rec["hid"],
        record_id=ctx.record.id,
        driver_id=rec["drv"],
        seller_id=rec["seller"],
        pickup_date=pickup_date,
        bag_numbers=list(bag_numbers),
        bag_count=len(bag_numbers),
        signature=rec["sig"][:64],
        signature_ok=fields is not None,
        at=ctx.at,
    )
    session.add(handover)
    session.flush()
    for bag_no in bag_numbers:
        bag = ctx.batch.bag(bag_no)
        if bag is None:
            ctx.disagree(UNKNOWN_BAG, f"handover {rec['hid']} lists bag {bag_no}, unknown here")
            continue
        bag.handover_id = handover.id
        if bag.picked_up_at is None:
            ctx.disagree(HANDOVER_BAG, f"bag {bag_no} handed over without a pickup scan", bag)
        if bag.seller_id is not None and bag.seller_id != rec["seller"]:
            ctx.disagree(HANDOVER_BAG, f"bag {bag_no} is of seller {bag.seller_id}", bag)
    if fields is None:
        ctx.disagree(BAD_SIGNATURE, f"handover {rec['hid']}: driver signature does not verify")
        return
    receipt = receipts.Receipt(fields, rec["sig"].lower())
    if session.get(ReceiptRow, receipt.receipt_id) is not None:
        ctx.disagree(BAD_HANDOVER, f"handover {rec['hid']} repeats receipt {receipt.receipt_id}")
        return
    session.add(
        ReceiptRow(
            id=receipt.receipt_id,
            handover_id=handover.id,
            pickup_date=fields.pickup_date,
            seller_id=fields.seller_id,
            seller_name=fields.seller_name,
            bag_numbers=list(fields.bag_numbers),
            driver_id=fields.driver_id,
            driver_name=fields.driver_name,
            driver_signature=receipt.driver_signature,
            issued_at=ctx.at,
        )
    )


# --- hub arrival --------------------------------------------------------------------------


def tolerance(session: Session) -> arrival.Tolerance:
    config = settings.of(session)
    return arrival.Tolerance(
        grams=int(config["ARRIVAL_TOLERANCE_G"]), percent=float(config["ARRIVAL_TOLERANCE_PCT"])
    )


def _arrive(ctx: Context, rec: dict) -> None:
    """The hub weighed the bag: arrived, then received or received with exception."""
    session = ctx.session
    bag = _known_bag(ctx, rec["bag"])
    if bag.status == lifecycle.PICKED_UP:
        lifecycle.transition(bag.status, lifecycle.ARRIVE)
    elif bag.status != lifecycle.RECEIPT_FAILED:
        raise Refusal(
            lifecycle.ILLEGAL_TRANSITION,
            f"arrival of bag {bag.bag_no}, which is {bag.status}: status unchanged",
            bag,
        )
    if bag.weight_g is None:
        check = None
        event = lifecycle.RECEIVE_WITH_EXCEPTION
    else:
        check = arrival.check_arrival(bag.weight_g, rec["g"], tolerance(session))
        event = check.event
    if bag.status == lifecycle.PICKED_UP:
        move(session, bag, lifecycle.ARRIVE, ctx.at, "weighed at the hub", ctx.actor)
    if check is None:
        ctx.disagree(NO_BAGGING_WEIGHT, "no bagging weight to compare with", bag)
        cause = f"arrival {rec['g']} g, no bagging weight"
    else:
        cause = (
            f"arrival {rec['g']} g vs bagging {bag.weight_g} g: difference "
            f"{check.difference_g:+d} g, allowance {check.allowance_g:.0f} g"
        )
        if bool(rec["ok"]) != check.ok:
            ctx.disagree(
                ARRIVAL_VERDICT,
                f"device says {'ok' if rec['ok'] else 'exception'}, gateway: {cause}",
                bag,
            )
    move(session, bag, event, ctx.at, cause, ctx.actor)
    bag.arrival_weight_g = rec["g"]
    bag.arrival_difference_g = check.difference_g if check else None
    bag.arrived_at = ctx.at
    session.add(
        Weighing(
            bag_id=bag.id,
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind="arrival",
            grams=rec["g"],
            difference_g=check.difference_g if check else None,
            allowance_g=check.allowance_g if check else None,
            at=ctx.at,
        )
    )


_HANDLERS = {
    "bag_open": _bag_open,
    "parcel": _parcel,
    "parcel_remove": _parcel_remove,
    "weigh": _weigh,
    "bag_close": _bag_close,
    "signin": _signin,
    "pickup": _pickup,
    "pickup_refuse": _pickup_refuse,
    "handover": _handover,
    "arrive": _arrive,
}
