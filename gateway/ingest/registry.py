"""The bag registry: applies device records (already validated by protocol.wire) to bags.

The ingest applies a device's records strictly in sequence, so a record must never raise out
of `apply` for a domain reason: that would block the device forever. A record the gateway
cannot apply, or a device decision its re-check does not share, becomes a Disagreement on the
bag (the device's fact is kept as sent, in `records`); a database error still raises, so the
ingest retries the whole batch.

Every handler checks first and writes afterwards, so a refusal leaves nothing half-applied.

Handlers read bags, memberships and parcels through a Batch (gateway/ingest/registry_batch.py):
the ingest applies the runs of many devices' records under one (`batch()`), prefetched in a
few queries; a record applied on its own gets a Batch of its own.

Devices sync in any order, so a record may come after others that happened later (issue 15).
Every event applied to a bag moves its key (`event_key`: time, then a tie) forward; a record
older than its bag's key, or than the claims and the hub receipt of the parcel it names, is
not applied here: its bag is marked dirty and replayed in time order when the run ends
(gateway/ingest/replay.py), so the outcome is the one of the records applied in time order.
"""

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from gateway import settings
from gateway.domain import arrival, bag_rules, deadlines, lifecycle, receipts
from gateway.ingest.registry_batch import Batch
from gateway.models import (
    Account,
    Address,
    Bag,
    BagEvent,
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
from gateway.services import couriers
from protocol import rules, wire

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
HANDOVER_BAG = "HANDOVER_BAG"  # a handed-over bag not ready, or of another seller
HANDOVER_DATE = "HANDOVER_DATE"  # the signed pickup date is not the day of the record
ARRIVAL_VERDICT = "ARRIVAL_VERDICT"  # device's ok/not ok differs from the gateway's check
NO_BAGGING_WEIGHT = "NO_BAGGING_WEIGHT"
BAD_REASON = "BAD_REASON"
DEVICE_ROLE = "DEVICE_ROLE"  # a record kind the device's role does not allow
# The hub weighed a bag whose pickup scan the gateway has not got: the weight is kept, the
# status waits (a late pickup record makes a replay apply both, in time order).
ARRIVAL_BEFORE_PICKUP = "ARRIVAL_BEFORE_PICKUP"

# What each device role (Device.role) may record. The courier's pickup happens on the
# seller's handheld (firmware/app/pickup.py: the driver signs in on it at the door); the hub's
# handheld only weighs arrivals.
BAGGING = ("bag_open", "parcel", "parcel_remove", "weigh", "bag_close")
PICKUP = ("signin", "pickup", "pickup_refuse", "handover")
ROLE_KINDS = {"seller": BAGGING + PICKUP, "hub": ("arrive",)}
# The kind of a record stored in place of one the database could not store (ledger.quarantine):
# never on the wire, skipped here.
QUARANTINED = "quarantined"


class Refusal(Exception):
    """A record (or part of one) the gateway does not accept; becomes a Disagreement."""

    def __init__(
        self,
        code: str,
        message: str,
        bag: Bag | None = None,
        trk: str | None = None,
        bag_no: str | None = None,
    ):
        super().__init__(message)
        self.code, self.message, self.bag, self.trk = code, message, bag, trk
        self.bag_no = bag_no


# --- order --------------------------------------------------------------------------------
# The key of an event is (time, tie): records of one device by seq, then the gateway's bag
# events, then hub receipts, at the same time. A bag's key (Bag.last_at, Bag.last_tie) is the
# largest key applied to it.

Key = tuple[datetime, str]


def record_tie(device_id: str, seq: int) -> str:
    return f"0|{device_id}|{seq:015d}"


def event_tie(event_id: int) -> str:
    return f"1|{event_id:015d}"


def receipt_tie(tracking_no: str) -> str:
    return f"2|{tracking_no}"


_ANY_EVENT = "1|~"  # above every event_tie: an event at this time is late if a key passes it


def after(bag: Bag, key: Key) -> bool:
    """Whether an event later than `key` is applied to the bag already."""
    return bag.last_at is not None and (bag.last_at, bag.last_tie or "") > key


def touch(bag: Bag, key: Key) -> None:
    if not after(bag, key):
        bag.last_at, bag.last_tie = key


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

    @property
    def key(self) -> Key:
        return (self.at, record_tie(self.device.id, self.record.seq))

    def disagree(
        self,
        code: str,
        message: str,
        bag: Bag | None = None,
        trk: str | None = None,
        bag_no: str | None = None,
    ) -> None:
        record_disagreement(
            self.session, bag, code, message, self.at, self.device.id, self.record.id, trk, bag_no
        )
        if bag is None and bag_no is not None:
            self.batch.kept_unplaced(bag_no)  # its bag's opening replays this record


_BATCH = "bagscan.registry.batch"  # session.info key of the current run's Batch


@contextmanager
def batch(session: Session, run: Batch, records: Iterable[Record]) -> Iterator[Batch]:
    """Apply runs of records, of one device or of many, through `run`: a Batch that may have
    loaded most of what they name already (the ledger prefetches the next records of many
    devices at once). What it lacks is prefetched; memberships are written, and late records'
    bags replayed, once at the end, not per device (issue 20: that was ~1 ms a device).

    Use inside a savepoint: if a record raises, roll back, `forget()` the Batch and apply
    the records one by one.
    """
    run.prefetch(r.body for r in records)
    session.info[_BATCH] = run
    try:
        yield run
        run.flush()
        _settle(session, run)
    finally:
        session.info.pop(_BATCH, None)


def _settle(session: Session, run: Batch) -> None:
    """Replay the bags late records named (gateway/ingest/replay.py, which uses this module)."""
    if run.dirty:
        from gateway.ingest import replay

        replay.settle(session, run)


def apply(session: Session, device: Device, record: Record) -> None:
    if record.kind == QUARANTINED:
        return
    if record.kind not in ROLE_KINDS.get(device.role, ()):
        _refuse_role(session, device, record)
        return
    run = session.info.get(_BATCH)
    own = run is None
    if own:
        run = Batch(session)
        run.prefetch([record.body])
    run.applied[device.id] = max(run.applied.get(device.id, 0), record.seq)
    ctx = Context(session, device, record, record.occurred_at, run)
    if not _late(ctx):
        apply_in(ctx)
    if own:
        run.flush()
        _settle(session, run)


def apply_in(ctx: Context) -> None:
    """Apply the record to the state in `ctx.batch` (the ingest's, or a replay's fold)."""
    record = ctx.record
    try:
        _HANDLERS[record.kind](ctx, record.body)
    except Refusal as r:
        ctx.disagree(r.code, r.message, r.bag, r.trk, r.bag_no)
    except lifecycle.TransitionRefused as r:
        ctx.disagree(r.code, r.message)
    except (ValueError, KeyError, TypeError) as err:  # a record we cannot read: keep going
        log.warning("record %s/%s not applied: %s", ctx.device.id, record.seq, err)
        ctx.disagree("RECORD_NOT_APPLIED", f"{record.kind} not applied: {err}")
    for bag_no in _bag_numbers(record.body):
        bag = ctx.batch.bag(bag_no)
        if bag is not None:
            touch(bag, ctx.key)


def _bag_numbers(body: dict) -> list[str]:
    found = [body.get("bag")] + (body.get("bags") if isinstance(body.get("bags"), list) else [])
    return [b for b in dict.fromkeys(found) if isinstance(b, str)]


def _late(ctx: Context) -> bool:
    """Whether the record comes after events later than it: then its bag is marked dirty, and
    the replay applies it. A handover is applied at once all the same (the replay finds it by
    its row) and decided again, as a whole, by the replay of its late bags."""
    body, run, key = ctx.record.body, ctx.batch, ctx.key
    why = f"late {ctx.record.kind} record {ctx.device.id}#{ctx.record.seq} of {ctx.at:%Y-%m-%d %H:%M:%S}"
    if ctx.record.kind == "handover":
        for bag_no in _bag_numbers(body):
            bag = run.bag(bag_no)
            if bag is not None and after(bag, key):
                run.mark_dirty(bag, why)
        return False
    bag = run.bag(body.get("bag")) if isinstance(body.get("bag"), str) else None
    if bag is None:
        return False
    late = after(bag, key)
    trk = body.get("trk")
    if ctx.record.kind in ("parcel", "parcel_remove") and isinstance(trk, str):
        # Another bag's claim on the parcel, or its hub receipt, came after this record.
        late = late or any(after(other, key) for other in run.claims(trk) if other is not bag)
        parcel = run.parcel(trk)
        late = late or (parcel is not None and _received_after(parcel, ctx.at))
    if late:
        run.mark_dirty(bag, why)
    return late


def _received_after(parcel: Row, at: datetime) -> bool:
    """Whether the parcel's hub receipt comes after a record at `at`: at the same time too,
    as a receipt's key ties after every record's (receipt_tie)."""
    return parcel.received_at is not None and parcel.received_at >= at


def _refuse_role(session: Session, device: Device, record: Record) -> None:
    """Stored and acknowledged (the device goes on), never applied: a disagreement, and the
    device status says so for the devices page and GET /api/devices."""
    message = f"a {device.role} device may not record {record.kind}; record not applied"
    record_disagreement(
        session, None, DEVICE_ROLE, message, record.occurred_at, device.id, record.id
    )
    status = lock_status(session, device)
    status["refused_count"] = int(status.get("refused_count") or 0) + 1
    status["last_refused"] = {"seq": record.seq, "kind": record.kind, "code": DEVICE_ROLE}
    device.status = status


def lock_status(session: Session, device: Device) -> dict:
    """A copy of the device's status to change, read again under the device's lock: applying
    reads devices without one while the store process writes their status (the ledger's
    _settle), and a status written from that read would undo what the store wrote."""
    session.flush()  # a change this transaction made to it is kept, not read over
    session.refresh(device, ["status"], with_for_update={"key_share": True})
    return dict(device.status or {})


def record_disagreement(
    session: Session,
    bag: Bag | None,
    code: str,
    message: str,
    at: datetime,
    device_id: str | None = None,
    record_id: int | None = None,
    trk: str | None = None,
    bag_no: str | None = None,
) -> None:
    """A disagreement; `bag_no` names a bag the gateway does not know (yet), kept and shown."""
    session.add(
        Disagreement(
            bag=bag,
            bag_no=bag.bag_no if bag is not None else bag_no,
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


def _move(session: Session, bag: Bag, event: str, at: datetime, cause: str, actor: str) -> str:
    """Apply a lifecycle event (lifecycle.transition decides; TransitionRefused if not allowed)."""
    to = lifecycle.transition(bag.status, event)
    set_status(session, bag, to, at, f"{event}: {cause}", actor)
    return to


def request(
    session: Session,
    bag: Bag,
    steps: Sequence[tuple[str, str]],
    at: datetime,
    actor: str,
    keep_refused: bool = False,
) -> str:
    """Lifecycle events decided at the gateway as one request (a cancel and its confirmation,
    a manual event, the system's close), each (event, cause), applied in order at `at`.

    Each is kept as a BagEvent, so that a replay decides it again at its time. An event older
    than what the bag has seen is decided by a replay, in time order. TransitionRefused if the
    bag's status at `at` does not allow a step: then nothing is kept, unless `keep_refused`,
    when the steps are kept unapplied (from the refused one on) and the bag's key moves past
    them, so that a late record showing they would have applied makes a replay apply them
    (docs/bag-lifecycle.md, "A cancel is decided at its own time")."""
    session.flush()
    if after(bag, (at, _ANY_EVENT)):
        return _late_request(session, bag, steps, at, actor, keep_refused)
    status, refused, applies = bag.status, None, []
    for event, _cause in steps:
        try:
            status = lifecycle.transition(status, event)
        except lifecycle.TransitionRefused as r:
            refused = r
            break
        applies.append(True)
    if refused is not None and not keep_refused:
        raise refused
    applies += [False] * (len(steps) - len(applies))
    for (event, cause), applied in zip(steps, applies, strict=True):
        row = BagEvent(bag_id=bag.id, at=at, event=event, cause=cause, actor=actor, applied=applied)
        session.add(row)
        session.flush()
        if applied:
            _move(session, bag, event, at, cause, actor)
        touch(bag, (at, event_tie(row.id)))
    if refused is not None:
        raise refused
    return bag.status


def _late_request(
    session: Session,
    bag: Bag,
    steps: Sequence[tuple[str, str]],
    at: datetime,
    actor: str,
    keep_refused: bool,
) -> str:
    from gateway.ingest import replay

    savepoint = session.begin_nested()
    rows = [
        BagEvent(bag_id=bag.id, at=at, event=event, cause=cause, actor=actor, applied=False)
        for event, cause in steps
    ]
    session.add_all(rows)
    session.flush()
    why = f"late {steps[0][0]} by {actor}"
    found = replay.replay(session, {bag.bag_no: why}, fresh={r.id for r in rows})
    refused = next((found[r.id] for r in rows if r.id in found), None)
    if refused is not None and not keep_refused:
        savepoint.rollback()
        session.refresh(bag)
        raise refused
    savepoint.commit()
    if refused is not None:
        raise refused
    return bag.status


def apply_event(session: Session, run: Batch, row: BagEvent) -> lifecycle.TransitionRefused | None:
    """A kept gateway event, in a replay's fold: applied if the bag's status then allows it.

    Applied or not, it moves the bag's key: a record older than it that arrives later may
    change what the event finds (a pickup refusal before a cancel refused after the pickup
    scan), so it makes a replay that decides the event again."""
    bag = session.get(Bag, row.bag_id)
    touch(bag, (row.at, event_tie(row.id)))
    if run.is_unborn(bag):
        row.applied = False
        return lifecycle.TransitionRefused(
            lifecycle.ILLEGAL_TRANSITION, f"bag {bag.bag_no} was not opened yet at {row.at}"
        )
    try:
        _move(session, bag, row.event, row.at, row.cause, row.actor)
    except lifecycle.TransitionRefused as refused:
        row.applied = False
        return refused
    row.applied = True
    return None


def find_bag(session: Session, bag_no: str) -> Bag | None:
    return session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()


def claimants(session: Session, tracking_no: str) -> list[Bag]:
    """Every bag that claims the parcel (a member or held out) or took it out again."""
    taken_out = select(Bag.id).join(Record, Record.bag_no == Bag.bag_no)
    claimed = select(BagParcel.bag_id).where(BagParcel.tracking_no == tracking_no)
    return list(
        session.scalars(
            select(Bag)
            .where(
                Bag.id.in_(claimed) | Bag.id.in_(taken_out.where(Record.tracking_no == tracking_no))
            )
            .order_by(Bag.id)
        )
    )


def bag_of_parcel(session: Session, tracking_no: str) -> Bag | None:
    """The bag a parcel was last put into as a member according to bagging data, or None."""
    return session.scalars(
        select(Bag)
        .join(BagParcel, BagParcel.bag_id == Bag.id)
        .where(BagParcel.tracking_no == tracking_no, BagParcel.held_out.is_(None))
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
    reborn = ctx.batch.reborn(bag_no)  # a replay opens the bag again: the same row, emptied
    bag = reborn if reborn is not None else Bag(bag_no=bag_no)
    for name, value in {
        "device_id": device.id,
        "status": lifecycle.SUBMITTED,
        "opened_at": ctx.at,
        "parcel_count": 0,
        "held_out_count": 0,
        "account_id": device.account_id,
        "pickup_address_id": address.id if address else None,
        "service": address.service if address else None,
        "disagreement_count": 0,
    }.items():
        setattr(bag, name, value)
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
    ctx.batch.opened(bag)  # written with the Batch's next flush, with the run's other changes
    touch(bag, ctx.key)
    if not ctx.batch.folding and ctx.batch.named_before(bag_no):
        ctx.batch.mark_dirty(bag, f"bag {bag_no} opened after records that name it")
    serial = wire.bag_serial(bag_no)
    if serial is None or not device.bag_range_lo <= serial <= device.bag_range_hi:
        ctx.disagree(
            BAG_NOT_IN_RANGE,
            f"bag number {bag_no} is outside the device's range "
            f"{device.bag_range_lo}..{device.bag_range_hi}",
            bag,
        )
    return bag


def _bag_id(session: Session, bag: Bag) -> int:
    """The bag's id: a bag opened in this run has one once it is flushed."""
    if bag.id is None:
        session.flush()
    return bag.id


def _bagging_bag(ctx: Context, bag_no: str) -> Bag:
    """The bag for a bagging record: opened by this device and still being filled."""
    bag = _open_bag(ctx, bag_no)
    _own(ctx, bag)
    if bag.status != lifecycle.SUBMITTED:
        raise Refusal(
            BAG_NOT_OPEN, f"{ctx.record.kind} for bag {bag_no}, which is already {bag.status}", bag
        )
    return bag


def _own(ctx: Context, bag: Bag) -> None:
    """Refusal unless the bag was opened on this device: only it fills the bag."""
    if bag.device_id != ctx.device.id:
        raise Refusal(
            BAG_OF_OTHER_DEVICE, f"bag {bag.bag_no} was opened on device {bag.device_id}", bag
        )


def _known_bag(ctx: Context, bag_no: str) -> Bag:
    bag = ctx.batch.bag(bag_no)
    if bag is None:
        raise Refusal(
            UNKNOWN_BAG,
            f"{ctx.record.kind} of bag {bag_no}, unknown to the gateway: kept, applied when "
            "the bag's records arrive",
            bag_no=bag_no,
        )
    return bag


# --- bagging ------------------------------------------------------------------------------


def _bag_open(ctx: Context, rec: dict) -> None:
    bag = ctx.batch.bag(rec["bag"])
    if bag is not None:
        _own(ctx, bag)
    _open_bag(ctx, rec["bag"])


def _parcel(ctx: Context, rec: dict) -> None:
    trk = rec["trk"]
    bag = _bagging_bag(ctx, rec["bag"])
    members = ctx.batch.members(bag)
    if trk in members:
        raise Refusal(rules.DUPLICATE, bag_rules.MESSAGES[rules.DUPLICATE], bag, trk)
    held = ctx.batch.held_out(bag)
    if trk in held:
        raise Refusal(rules.DUPLICATE, f"held out already ({held[trk]}), scanned again", bag, trk)
    parcel = ctx.batch.parcel(trk)
    code = None
    if parcel is None:
        if settings.of(ctx.session).get("UNKNOWN_PARCEL") == "refuse":
            code = UNKNOWN_PARCEL
            ctx.disagree(UNKNOWN_PARCEL, f"parcel {trk} was never imported: held out", bag, trk)
    else:
        code = _recheck_parcel(ctx, bag, parcel, members.keys())
    # A parcel the gateway refuses is held out: not a member, kept with its reason; the seller
    # must take it out (docs/bag-lifecycle.md, "Held-out parcels").
    ctx.batch.add_member(bag, trk, ctx.at, held_out=code)
    bag.parcel_count = len(members)
    bag.held_out_count = len(held)
    if bag.seller_id is None and parcel is not None and code is None:
        bag.seller_id = parcel.seller_id


def _status_at(parcel: Row, at: datetime) -> str:
    """The parcel's status at `at`: a hub receipt after `at` did not count yet."""
    if parcel.status == bag_rules.PARCEL_RECEIVED and _received_after(parcel, at):
        return parcel.status_before_receipt or bag_rules.RTS
    return parcel.status


def _recheck_parcel(ctx: Context, bag: Bag, parcel: Row, members: Collection[str]) -> str | None:
    """The gateway's own verdict on the device's add (domain.bag_rules): the refusal code, kept
    as a disagreement (on both bags when the parcel is in another), or None."""
    other = ctx.batch.holder(parcel.tracking_no)
    holds = other is not None and other.status not in lifecycle.RELEASES_PARCELS
    hubs = ctx.batch.hubs(bag)
    linked = (
        ctx.batch.linked_sellers(bag.account_id) if bag.account_id else {parcel.seller_id}
    )  # a device bound to no account: no store links to check
    facts = bag_rules.ParcelFacts(
        tracking_no=parcel.tracking_no,
        seller_id=parcel.seller_id,
        status=_status_at(parcel, ctx.at),
        hub=parcel.hub,
        sea_big_item=parcel.sea_big_item,
        in_bag=other.bag_no if holds else None,
    )
    code = bag_rules.check_add(
        facts,
        bag_rules.BagFacts(
            bag_no=bag.bag_no,
            tracking_nos=members,
            hubs=hubs,
            linked_seller_ids=linked,
            baggable_hubs=settings.of(ctx.session)["BAGGABLE_HUBS"],
        ),
    )
    if code is not None:
        ctx.disagree(code, bag_rules.MESSAGES[code] + ": held out", bag, parcel.tracking_no)
    if code == rules.IN_OTHER_BAG and other is not None:
        ctx.disagree(
            code,
            f"also scanned into bag {bag.bag_no} on {ctx.device.id}: held out there",
            other,
            parcel.tracking_no,
        )
    return code


def _parcel_remove(ctx: Context, rec: dict) -> None:
    bag = _bagging_bag(ctx, rec["bag"])
    members, held = ctx.batch.members(bag), ctx.batch.held_out(bag)
    if rec["trk"] not in members and rec["trk"] not in held:
        raise Refusal(
            NOT_IN_BAG, f"parcel {rec['trk']} is not in bag {bag.bag_no}", bag, rec["trk"]
        )
    ctx.batch.remove_member(bag, rec["trk"])  # a held-out parcel taken out, as it must be
    bag.parcel_count = len(members)
    bag.held_out_count = len(held)


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
    # Re-check the device's limits (protocol/rules.py, the one definition). The device counts
    # the parcels it put in, held-out ones too: they are flagged on their own.
    count = len(ctx.batch.members(bag))
    scanned = count + len(ctx.batch.held_out(bag))
    if rec["n"] != scanned:
        ctx.disagree(PARCEL_COUNT, f"device counts {rec['n']} parcels, the gateway {scanned}", bag)
    if count > rules.MAX_PARCELS:
        ctx.disagree(rules.BAG_FULL, f"{count} parcels, more than {rules.MAX_PARCELS}", bag)
    if not rules.weight_ok(rec["g"]):
        ctx.disagree(rules.OVERWEIGHT, bag_rules.MESSAGES[rules.OVERWEIGHT], bag)
    if dims is not None and not rules.size_ok(dims):
        ctx.disagree(rules.OVERSIZE, bag_rules.MESSAGES[rules.OVERSIZE], bag)
    bag.weight_g = rec["g"]
    bag.dims_cm = dims
    bag.closed_at = ctx.at
    _weighing(ctx, bag, "bagging", rec["g"])
    # The handheld numbers bags from the range we assigned it, so a closed bag has its number
    # and its label: both steps happen at once.
    _move(session, bag, lifecycle.ROUTE, ctx.at, "bag closed on the handheld", ctx.actor)
    _move(
        session,
        bag,
        lifecycle.LABEL_ASSIGNED,
        ctx.at,
        "bag number from the device's range",
        ctx.actor,
    )
    if bag.service in deadlines.SERVICES:
        bag.pickup_due_at = deadlines.pickup_due(
            ctx.at, bag.service, _zone(session, bag), _window(session, bag)
        )


def _window(session: Session, bag: Bag) -> deadlines.Window | None:
    """The Milkrun pickup window agreed for the bag's pickup address (None: none agreed)."""
    address = session.get(Address, bag.pickup_address_id) if bag.pickup_address_id else None
    text = address.pickup_window if address is not None else None
    return deadlines.Window.parse(text) if text else None


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
    """The driver scanned the bag: its device time is the bag's pickup time (docs/domain.md)."""
    session = ctx.session
    bag = _known_bag(ctx, rec["bag"])
    _driver(ctx, rec["drv"], bag)
    _scan(ctx, bag, "pickup", rec["drv"])
    _allowed(bag, lifecycle.PICKUP_SCAN, "pickup scan")
    _move(session, bag, lifecycle.PICKUP_SCAN, ctx.at, f"scanned by driver {rec['drv']}", ctx.actor)
    bag.picked_up_at = ctx.at
    bag.driver_id = rec["drv"]
    bag.pickup_refused_reason = None


def _pickup_refuse(ctx: Context, rec: dict) -> None:
    session = ctx.session
    bag = _known_bag(ctx, rec["bag"])
    if rec["why"] not in wire.REFUSE_REASONS:
        ctx.disagree(BAD_REASON, f"refusal reason {rec['why']!r} not in {wire.REFUSE_REASONS}", bag)
    _scan(ctx, bag, "refuse", rec["drv"], rec["why"][:16])
    if bag.status == lifecycle.PICKED_UP and (
        bag.handover_id is not None or bag.driver_id not in (None, rec["drv"])
    ):
        # Only the driver who scanned it, before handing over, can take the scan back.
        raise Refusal(
            lifecycle.ILLEGAL_TRANSITION,
            "refusal kept, status unchanged: the bag was handed over or scanned by another driver",
            bag,
        )
    _allowed(bag, lifecycle.PICKUP_REFUSED, "refusal")
    cause = f"refused by driver {rec['drv']}: {rec['why']}"
    _move(session, bag, lifecycle.PICKUP_REFUSED, ctx.at, cause, ctx.actor)
    bag.pickup_refused_reason = rec["why"][:16]
    bag.picked_up_at = None  # a refused bag was not picked up; the scan stays in the timeline


def _scan(ctx: Context, bag: Bag, kind: str, driver_id: str, reason: str | None = None) -> None:
    """The driver's scan as the handheld recorded it: kept whatever the status makes of it."""
    ctx.session.add(
        Scan(
            bag_id=_bag_id(ctx.session, bag),
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind=kind,
            driver_id=driver_id,
            reason=reason,
            at=ctx.at,
        )
    )


def _allowed(bag: Bag, event: str, what: str) -> None:
    """Refusal (the record is kept, the status unchanged) if the bag's status refuses `event`."""
    try:
        lifecycle.transition(bag.status, event)
    except lifecycle.TransitionRefused as r:
        raise Refusal(r.code, f"{what} kept, status unchanged: {r.message}", bag) from None


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
    """A handover signed by the driver. The handover is kept as recorded; only when the
    driver's signature holds do the bags that were ready at its time go with it, and its
    receipt is issued (docs/domain.md, "Pickup and handover": the receipt is what the driver
    signed). A replay decides it again as a whole, at its time (gateway/ingest/replay.py)."""
    session = ctx.session
    handover = _recorded_handover(ctx, rec)
    try:
        pickup_date = date.fromisoformat(rec["date"])
    except ValueError:
        raise Refusal(BAD_HANDOVER, f"handover date {rec['date']!r} is not YYYY-MM-DD") from None
    bag_numbers = rec["bags"]
    if not bag_numbers or not all(wire.text_ok(b) for b in bag_numbers):
        raise Refusal(BAD_HANDOVER, "handover bags must be a non-empty list of bag numbers")
    store = session.get(Store, rec["seller"])
    if store is None:
        ctx.disagree(UNKNOWN_STORE, f"seller {rec['seller']} is not a known store")
    driver = _driver(ctx, rec["drv"])
    fields = _verified_fields(session, rec, pickup_date, store, driver)
    if handover is None:
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
    if fields is None:
        # A list the driver did not sign certifies nothing: no bag goes with it.
        ctx.disagree(BAD_SIGNATURE, f"handover {rec['hid']}: driver signature does not verify")
        return
    refused = _handover_bags(ctx, rec, store, handover, list(dict.fromkeys(bag_numbers)))
    day = _pickup_day(session, store, ctx.at)
    if abs((pickup_date - day).days) > 1:
        # The signed date is printed on the receipt: a date far from the record's time (its
        # wall time checked by the ledger) is not certified.
        ctx.disagree(
            HANDOVER_DATE,
            f"handover {rec['hid']} is dated {pickup_date}, recorded on {day}: no receipt",
        )
        return
    if len(refused) == len(set(bag_numbers)):
        ctx.disagree(BAD_HANDOVER, f"handover {rec['hid']}: no bag can be handed over")
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
            refused_bags=refused,
            driver_id=fields.driver_id,
            driver_name=fields.driver_name,
            driver_signature=receipt.driver_signature,
            issued_at=ctx.at,
        )
    )


def _recorded_handover(ctx: Context, rec: dict) -> Handover | None:
    """The handover this record made, when a replay folds it again; None the first time.
    Refusal when another record of the device already made a handover with this id."""
    found = ctx.session.scalars(
        select(Handover).where(
            Handover.device_id == ctx.device.id, Handover.device_handover_id == rec["hid"]
        )
    ).first()
    if found is not None and found.record_id != ctx.record.id:
        raise Refusal(BAD_HANDOVER, f"handover {rec['hid']} was already recorded")
    return found


def _verified_fields(
    session: Session, rec: dict, pickup_date: date, store: Store | None, driver: Driver | None
) -> receipts.HandoverFields | None:
    """The fields the driver's signature verifies with, or None (unknown driver, a seller not
    on the driver's route, or a signature over other fields)."""
    if driver is None:
        return None
    key = couriers.signing_key(session, driver, settings.secret(session), store)
    if key is None:  # the seller's account is not on the driver's route
        return None
    candidates = signed_fields(session, rec["seller"], pickup_date, rec["bags"], driver)
    return next(
        (f for f in candidates if receipts.verify_driver_signature(f, rec["sig"], key)), None
    )


def _handover_bags(
    ctx: Context, rec: dict, store: Store | None, handover: Handover, bag_numbers: list[str]
) -> list[dict]:
    """Only the seller's own bags that are ready go with the handover; any other bag listed
    is refused (on the receipt, with its reason) and left as it was. Returns the refused."""
    refused = []
    for bag_no in bag_numbers:
        bag = ctx.batch.bag(bag_no)
        why = _handover_refusal(ctx, rec, store, bag_no, bag)
        if why is not None:
            ctx.disagree(why[0], f"handover {rec['hid']}: {why[1]}", bag, bag_no=bag_no)
            refused.append({"bag": bag_no, "code": why[0], "reason": why[1]})
            continue
        bag.handover_id = handover.id
        if bag.picked_up_at is None:
            ctx.disagree(HANDOVER_BAG, f"bag {bag_no} handed over without a pickup scan", bag)
    return refused


# A bag is ready to be handed over while it waits for its driver, or once this driver has
# scanned it (the scans come just before the handover on the same handheld).
_READY = frozenset({lifecycle.AWAITING_PICKUP, lifecycle.PICKED_UP})


def _handover_refusal(
    ctx: Context, rec: dict, store: Store | None, bag_no: str, bag: Bag | None
) -> tuple[str, str] | None:
    """Why a bag listed in a handover cannot go with it, as (code, reason), or None."""
    if bag is None:
        return UNKNOWN_BAG, f"bag {bag_no} is unknown here"
    account = store.account_id if store is not None else None
    if bag.seller_id != rec["seller"] and (account is None or bag.account_id != account):
        return HANDOVER_BAG, f"bag {bag_no} is not of seller {rec['seller']}"
    if bag.status not in _READY:
        return HANDOVER_BAG, f"bag {bag_no} is {bag.status}, not ready for pickup"
    if bag.status == lifecycle.PICKED_UP and bag.driver_id != rec["drv"]:
        return HANDOVER_BAG, f"bag {bag_no} was picked up by driver {bag.driver_id}"
    if bag.handover_id is not None:
        return HANDOVER_BAG, f"bag {bag_no} was already handed over"
    return None


def _pickup_day(session: Session, store: Store | None, at: datetime) -> date:
    """The day of `at` in the seller's zone (the handheld dates handovers so)."""
    account = session.get(Account, store.account_id) if store and store.account_id else None
    return at.astimezone(ZoneInfo(account.tz if account else deadlines.DEFAULT_TZ)).date()


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
    elif bag.status not in lifecycle.AFTER_PICKUP:
        # Weighed at the hub before the gateway has the bag's pickup scan (the courier's
        # handheld syncs later): the weight is kept, the status waits; when the pickup record
        # comes, the replay applies both in time order.
        _arrived(ctx, bag, rec["g"], None)
        raise Refusal(
            ARRIVAL_BEFORE_PICKUP,
            f"arrival {rec['g']} g of bag {bag.bag_no}, which is {bag.status}: no pickup scan "
            "known yet; weight kept, status unchanged until the pickup record arrives",
            bag,
        )
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
        _move(session, bag, lifecycle.ARRIVE, ctx.at, "weighed at the hub", ctx.actor)
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
    _move(session, bag, event, ctx.at, cause, ctx.actor)
    _arrived(ctx, bag, rec["g"], check)


def _arrived(ctx: Context, bag: Bag, grams: int, check: arrival.ArrivalCheck | None) -> None:
    """The hub's weight on the bag and in its weighings, with the gateway's check if any."""
    bag.arrival_weight_g = grams
    bag.arrival_difference_g = check.difference_g if check else None
    bag.arrived_at = ctx.at
    _weighing(ctx, bag, "arrival", grams, check)


def _weighing(
    ctx: Context, bag: Bag, kind: str, grams: int, check: arrival.ArrivalCheck | None = None
) -> None:
    ctx.session.add(
        Weighing(
            bag_id=_bag_id(ctx.session, bag),
            device_id=ctx.device.id,
            record_id=ctx.record.id,
            kind=kind,
            grams=grams,
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
