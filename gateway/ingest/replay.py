"""Replay: a bag's state derived again from the stored records, in time order (issue 15).

Handhelds sync when they can, so the gateway sees each device's records in order but the
fleet's in any order. The registry applies a record at once when nothing later has touched
its bag; otherwise (gateway/ingest/registry.py `_late`) the bag is marked dirty and replayed
here when the run ends:

1. The component: the dirty bags, every bag that claims a parcel they claim (a member, a
   held-out parcel, an IN_OTHER_BAG conflict, a record naming it: taken out again too), so
   that who holds a parcel is decided again, and every bag listed in a handover that lists
   one of them, so that the handover is decided again as a whole (which bags go with it, its
   receipt).
   Bags with no bagging record (made outside the ingest) are left as they are.
2. Its events: the applied records naming these bags (each device's up to its applied seq),
   the handovers listing them, the gateway's bag events (cancel, manual, system close; kept
   refused cancels too), the hub receipts of their parcels.
3. Everything derived from them is emptied: status and history, members and held-out
   parcels, scans, weighings, the records' disagreements, online times, the handovers'
   links to bags and their receipts.
4. The events are folded through the registry's own handlers in key order (time, then the
   tie of registry.record_tie / event_tie / receipt_tie), each device's records in seq order.
5. What changed (status, members, held-out parcels, pickup, arrival, handover and receipt,
   online times, a gateway event that applies or no longer applies) is noted in `revisions` with the late record that caused it.

So the outcome is the one of the events applied in time order, whatever order they came in.
"""

import heapq
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Text, cast, delete, or_, select
from sqlalchemy.orm import Session

from gateway.domain import lifecycle, online_time
from gateway.ingest import registry
from gateway.ingest.registry_batch import Batch
from gateway.models import (
    Bag,
    BagEvent,
    BagHistory,
    BagParcel,
    Device,
    Disagreement,
    Handover,
    Parcel,
    Receipt,
    Record,
    Revision,
    Scan,
    Weighing,
    utcnow,
)

_RECORD_COLUMNS = (
    Record.id,
    Record.seq,
    Record.kind,
    Record.body,
    Record.occurred_at,
    Record.device_id,
)
# A handover is dated within a day of its bags' records (registry HANDOVER_DATE); looking
# two days either side of them finds the handovers that list a bag.
_HANDOVER_WINDOW = timedelta(days=2)


def settle(session: Session, run: Batch) -> None:
    """Replay the bags marked dirty in the run; the run's cached state is then stale."""
    while run.dirty:
        dirty = dict(run.dirty)
        run.dirty.clear()
        replay(session, dirty, run.applied)
    run.forget()


def replay(
    session: Session,
    dirty: dict[str, str],
    applied: dict[str, int] | None = None,
    fresh: Collection[int] = (),
) -> dict[int, lifecycle.TransitionRefused]:
    """Replay the component of the `dirty` bags (bag_no -> why); `applied`: seqs applied in
    the current, not yet recorded, run by device; `fresh`: BagEvent ids of the request being
    decided (its outcome is the answer, not a revision). Returns the gateway events refused
    in the fold, by BagEvent id."""
    session.flush()
    bags, handovers = _component(session, set(dirty))
    if not bags:
        return {}
    ids = [b.id for b in bags]
    nos = [b.bag_no for b in bags]
    trks = _parcels_of(session, ids, nos)
    received = [
        p for p in _in(session, Parcel, Parcel.tracking_no, trks) if p.received_at is not None
    ]
    events = list(session.scalars(select(BagEvent).where(BagEvent.bag_id.in_(ids))))
    records = _records(session, nos, [h.record_id for h in handovers], applied or {})
    before = _snapshot(session, bags, received, events, handovers)
    _empty(session, bags, ids, nos, received, handovers)

    run = Batch(session)
    run.folding = True
    run.unborn(bags)
    run.prefetch(r.body for r in records)
    devices = {d.id: d for d in _in(session, Device, Device.id, {r.device_id for r in records})}
    refused: dict[int, lifecycle.TransitionRefused] = {}
    for _key, kind, item in _stream(records, events, received):
        if kind == "record":
            device = devices[item.device_id]
            if item.kind not in registry.ROLE_KINDS.get(device.role, ()):
                continue  # refused by role when it came (DEVICE_ROLE), never applied
            registry.apply_in(registry.Context(session, device, item, item.occurred_at, run))
        elif kind == "event":
            why = registry.apply_event(session, run, item)
            if why is not None:
                refused[item.id] = why
        else:
            _receive(session, run, item)
    run.flush()
    session.flush()
    for bag in bags:
        session.expire(bag, ["history", "disagreements", "parcels", "held_out_parcels"])
    for handover in handovers:
        session.expire(handover, ["receipt"])
    after = _snapshot(session, bags, received, events, handovers)
    _note(session, before, after, bags, fresh, "; ".join(dirty.values()))
    return refused


def _in(session: Session, model, column, values: Iterable) -> list:
    values = list(values)
    found = []
    for start in range(0, len(values), 2000):
        found += session.scalars(select(model).where(column.in_(values[start : start + 2000])))
    return found


def _component(session: Session, start: set[str]) -> tuple[list[Bag], list[Handover]]:
    """The bags to replay together, with bagging records: those that share a parcel claim or
    a handover; and the handovers that list them."""
    found: dict[str, Bag] = {}
    handovers: dict[int, Handover] = {}
    todo = set(start)
    while todo:
        replayable = set(
            session.scalars(
                select(Record.bag_no).where(
                    Record.bag_no.in_(sorted(todo)), Record.kind.in_(registry.BAGGING)
                )
            )
        )
        new = [b for b in _in(session, Bag, Bag.bag_no, todo & replayable)]
        found.update((b.bag_no, b) for b in new)
        if not new:
            break
        listing = [h for h in _listing(session, new) if h.id not in handovers]
        handovers.update((h.id, h) for h in listing)
        trks = _parcels_of(session, [b.id for b in new], [b.bag_no for b in new])
        others: set[int] = set()
        for start_at in range(0, len(trks), 2000):
            group = sorted(trks)[start_at : start_at + 2000]
            others.update(
                session.scalars(select(BagParcel.bag_id).where(BagParcel.tracking_no.in_(group)))
            )
            others.update(
                session.scalars(
                    select(Disagreement.bag_id).where(
                        Disagreement.tracking_no.in_(group),
                        Disagreement.code == registry.rules.IN_OTHER_BAG,
                        Disagreement.bag_id.is_not(None),
                    )
                )
            )
            others.update(
                session.scalars(
                    select(Bag.id)
                    .join(Record, Record.bag_no == Bag.bag_no)
                    .where(Record.tracking_no.in_(group))
                )
            )
        known = {b.id for b in found.values()}
        todo = {b.bag_no for b in _in(session, Bag, Bag.id, others - known)}
        todo.update(b for h in listing for b in h.bag_numbers or () if isinstance(b, str))
        todo -= found.keys()
    ordered = sorted(handovers.values(), key=lambda h: h.id)
    return sorted(found.values(), key=lambda b: b.id), ordered


def _listing(session: Session, bags: list[Bag]) -> list[Handover]:
    """The handovers (made by a record) that list one of the bags.

    The list is JSON: the query keeps the rows whose text holds a bag number as JSON writes
    it, which may say yes too often (never no), and the list itself decides."""
    first = min(b.opened_at for b in bags) - _HANDOVER_WINDOW
    wanted = {b.bag_no for b in bags}
    text = cast(Handover.bag_numbers, Text)
    found: dict[int, Handover] = {}
    numbers = sorted(wanted)
    for start in range(0, len(numbers), 200):
        named = [
            text.contains(json.dumps(n), autoescape=True) for n in numbers[start : start + 200]
        ]
        rows = session.scalars(
            select(Handover).where(
                Handover.at >= first, Handover.record_id.is_not(None), or_(*named)
            )
        )
        found.update((h.id, h) for h in rows if wanted & set(h.bag_numbers or ()))
    return list(found.values())


def _parcels_of(session: Session, ids: list[int], nos: list[str]) -> set[str]:
    """The tracking numbers the bags claim now or their records name."""
    trks = set(_values(session, BagParcel.tracking_no, BagParcel.bag_id, ids))
    trks.update(_values(session, Record.tracking_no, Record.bag_no, nos))
    trks.discard(None)
    return trks


def _values(session: Session, column, key, values: list) -> Iterator:
    for start in range(0, len(values), 2000):
        yield from session.scalars(select(column).where(key.in_(values[start : start + 2000])))


def _records(
    session: Session, nos: list[str], handover_records: list[int], applied: dict[str, int]
) -> list:
    """The applied records naming the bags, and those that made the handovers listing them."""
    rows = []
    for start in range(0, len(nos), 2000):
        rows += session.execute(
            select(*_RECORD_COLUMNS).where(
                Record.bag_no.in_(nos[start : start + 2000]), Record.kind != registry.QUARANTINED
            )
        ).all()
    for start in range(0, len(handover_records), 2000):
        rows += session.execute(
            select(*_RECORD_COLUMNS).where(Record.id.in_(handover_records[start : start + 2000]))
        ).all()
    frontier = {
        d.id: max(d.applied_seq, applied.get(d.id, 0))
        for d in _in(session, Device, Device.id, {r.device_id for r in rows})
    }
    unique = {r.id: r for r in rows if r.seq <= frontier[r.device_id]}
    return sorted(unique.values(), key=lambda r: (r.device_id, r.seq))


def _stream(records: list, events: list[BagEvent], received: list[Parcel]) -> Iterator:
    """(key, kind, item) in key order; each device's records stay in seq order."""
    streams: dict[str, list] = {}
    for r in records:
        key = (r.occurred_at, registry.record_tie(r.device_id, r.seq))
        streams.setdefault(r.device_id, []).append((key, "record", r))
    ordered = sorted(events, key=lambda e: e.id)
    streams["~events"] = [((e.at, registry.event_tie(e.id)), "event", e) for e in ordered]
    receipts = [
        ((p.received_at, registry.receipt_tie(p.tracking_no)), "receipt", p) for p in received
    ]
    streams["~receipts"] = sorted(receipts, key=lambda item: item[0])
    return heapq.merge(*streams.values(), key=lambda item: item[0])


def _empty(
    session: Session,
    bags: list[Bag],
    ids: list[int],
    nos: list[str],
    received: list[Parcel],
    handovers: list[Handover],
) -> None:
    """Drop everything derived from the events of these bags (they are folded again)."""
    for model in (BagHistory, BagParcel, Scan, Weighing):
        session.execute(
            delete(model).where(model.bag_id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
    session.execute(
        delete(Disagreement).where(
            Disagreement.record_id.is_not(None),
            (Disagreement.bag_id.in_(ids))
            | (Disagreement.bag_id.is_(None) & Disagreement.bag_no.in_(nos))
            | Disagreement.record_id.in_([h.record_id for h in handovers]),
        ),
        execution_options={"synchronize_session": False},
    )
    handover_ids = [h.id for h in handovers]
    session.execute(
        delete(Receipt).where(Receipt.handover_id.in_(handover_ids)),
        execution_options={"synchronize_session": False},
    )
    for obj in list(session):
        if isinstance(obj, BagHistory | BagParcel | Scan | Weighing | Disagreement | Receipt):
            session.expunge(obj)
    for handover in handovers:
        session.expire(handover, ["receipt"])
    # A bag the fold does not replay (made outside the ingest) is decided again as it is.
    for bag in session.scalars(select(Bag).where(Bag.handover_id.in_(handover_ids))):
        bag.handover_id = None
    for bag in bags:
        session.expire(bag, ["history", "disagreements", "parcels", "held_out_parcels"])
        bag.last_at = bag.last_tie = None
        bag.handover_id = None
        for name in (
            "weight_g",
            "dims_cm",
            "closed_at",
            "seller_id",
            "pickup_due_at",
            "picked_up_at",
            "driver_id",
            "pickup_refused_reason",
            "arrival_weight_g",
            "arrival_difference_g",
            "arrived_at",
        ):
            setattr(bag, name, None)
    for parcel in received:
        parcel.online_at = parcel.online_reason = None


def _receive(session: Session, run: Batch, parcel: Parcel) -> None:
    """A hub receipt in the fold: the online time from the parcel's bag at that moment."""
    bag = run.holder(parcel.tracking_no)
    online = online_time.online_time(
        parcel.received_at,
        bag.bag_no if bag else None,
        bag.picked_up_at if bag else None,
    )
    parcel.online_at, parcel.online_reason = online.at, online.reason
    key = (parcel.received_at, registry.receipt_tie(parcel.tracking_no))
    for claim in run.claims(parcel.tracking_no):
        registry.touch(claim, key)


@dataclass(frozen=True)
class _BagState:
    status: str
    members: tuple[str, ...]
    held_out: tuple[tuple[str, str], ...]
    picked_up_at: datetime | None
    arrival: tuple[int | None, int | None]
    handover: str | None  # the device's handover id (wire "hid") the bag went with


def _snapshot(
    session: Session,
    bags: list[Bag],
    parcels: list[Parcel],
    events: list[BagEvent],
    handovers: list[Handover],
) -> dict:
    state: dict = {}
    hids = {h.id: h.device_handover_id for h in handovers}
    rows_of: dict[int, list] = {b.id: [] for b in bags}
    for start in range(0, len(bags), 2000):
        found = session.execute(
            select(BagParcel.bag_id, BagParcel.tracking_no, BagParcel.held_out)
            .where(BagParcel.bag_id.in_([b.id for b in bags[start : start + 2000]]))
            .order_by(BagParcel.id)
        )
        for bag_id, trk, held in found:
            rows_of[bag_id].append((trk, held))
    for bag in bags:
        rows = rows_of[bag.id]
        state[("bag", bag.id)] = _BagState(
            bag.status,
            tuple(trk for trk, held in rows if held is None),
            tuple((trk, held) for trk, held in rows if held is not None),
            bag.picked_up_at,
            (bag.arrival_weight_g, bag.arrival_difference_g),
            hids.get(bag.handover_id) if bag.handover_id else None,
        )
    for parcel in parcels:
        state[("parcel", parcel.tracking_no)] = (parcel.online_at, parcel.online_reason)
    for event in events:
        state[("event", event.id)] = (event.bag_id, event.event, event.actor, event.applied)
    for handover in handovers:
        receipt = handover.receipt
        state[("handover", handover.id)] = (
            handover.device_handover_id,
            tuple(handover.bag_numbers or ()),
            receipt.id if receipt else None,
            tuple(r["bag"] for r in receipt.refused_bags or ()) if receipt else (),
        )
    return state


def _note(
    session: Session,
    before: dict,
    after: dict,
    bags: list[Bag],
    fresh: Collection[int],
    cause: str,
) -> None:
    """A revision for every derived fact the replay changed."""
    at = utcnow()
    bag_ids = {b.bag_no: b.id for b in bags}
    for (kind, ident), old in before.items():
        new = after[(kind, ident)]
        if old == new or (kind == "event" and ident in fresh):
            continue
        if kind == "bag":
            session.add(Revision(bag_id=ident, at=at, cause=cause, change=_bag_change(old, new)))
        elif kind == "parcel":
            change = (
                f"online time of {ident} {_time(old[0])} ({old[1]}) -> {_time(new[0])} ({new[1]})"
            )
            holder = registry.bag_of_parcel(session, ident)  # its bag's history shows it too
            session.add(
                Revision(
                    bag_id=holder.id if holder else None,
                    tracking_no=ident,
                    at=at,
                    cause=cause,
                    change=change,
                )
            )
        elif kind == "handover":
            hid, listed = new[0], new[1]
            change = f"handover {hid}: " + _receipt_change(old, new)
            for bag_no in dict.fromkeys(listed):  # on each listed bag the gateway replays
                if bag_no in bag_ids:
                    session.add(Revision(bag_id=bag_ids[bag_no], at=at, cause=cause, change=change))
        else:
            bag_id, event, actor, applied = new
            change = f"{event} by {actor} " + ("applies again" if applied else "no longer applies")
            session.add(Revision(bag_id=bag_id, at=at, cause=cause, change=change))


def _receipt_change(old: tuple, new: tuple) -> str:
    """A handover's receipt before -> after: issued late, withdrawn, or its refused bags."""
    if old[2] != new[2]:
        if new[2] is None:
            return f"receipt {old[2]} withdrawn"
        return f"receipt {new[2]} issued" + (f" (refused: {', '.join(new[3])})" if new[3] else "")
    return f"refused bags [{', '.join(old[3])}] -> [{', '.join(new[3])}]"


def _bag_change(old: _BagState, new: _BagState) -> str:
    parts = []
    if old.status != new.status:
        parts.append(f"status {old.status} -> {new.status}")
    if old.members != new.members:
        gone = sorted(set(old.members) - set(new.members))
        came = sorted(set(new.members) - set(old.members))
        parts.append(
            f"members -{len(gone)} +{len(came)}" + (f" (out: {', '.join(gone)})" if gone else "")
        )
    if old.held_out != new.held_out:
        parts.append(f"held out {len(old.held_out)} -> {len(new.held_out)}")
    if old.picked_up_at != new.picked_up_at:
        parts.append(f"pickup scan {_time(old.picked_up_at)} -> {_time(new.picked_up_at)}")
    if old.arrival != new.arrival:
        parts.append(f"arrival (g, difference) {old.arrival} -> {new.arrival}")
    if old.handover != new.handover:
        parts.append(f"handover {old.handover or 'none'} -> {new.handover or 'none'}")
    return "; ".join(parts)


def _time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "none"
