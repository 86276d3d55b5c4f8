"""Parcels: the platform import (all or nothing) and their receipt at the hub (online time)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import storable
from gateway.domain import bag_rules, online_time
from gateway.errors import Refused, bad_field
from gateway.ingest import registry, replay
from gateway.ingest.registry import bag_of_parcel
from gateway.models import Parcel, utcnow
from protocol import wire

FIELDS = ("tracking_no", "seller_id", "status", "hub", "sea_big_item")
MAX_IMPORT = 20000  # rows per import: one transaction, kept short
_TRUE = {True, "1", "true", "yes", "y"}
_FALSE = {False, "0", "false", "no", "n", "", None}


def _refused(row: int | None, column: str, message: str) -> Refused:
    """One bad row refuses the whole import; `row` counts from 1 (the API names the field
    parcels[row - 1].column, the CLI the row of its CSV)."""
    where = f"row {row}, " if row is not None else ""
    field = f"parcels[{row - 1}].{column}" if row else column
    return bad_field(field, f"{where}{column}: {message}")


@dataclass(frozen=True)
class ParcelRow:
    tracking_no: str
    seller_id: str
    status: str
    hub: str
    sea_big_item: bool


def _text(row: int, raw: Mapping, field: str, limit: int) -> str:
    value = raw.get(field)
    if isinstance(value, str) and len(value) <= limit:  # the length as sent, as the API documents
        value = value.strip()
    if (
        not isinstance(value, str)
        or not value
        or len(value) > limit
        or not storable(value)  # before text_ok, which encodes it
        or not wire.text_ok(value)
    ):
        raise _refused(row, field, f"must be printable text of 1-{limit} characters")
    return value


def validate(rows: Iterable[object]) -> list[ParcelRow]:
    """Every row checked before anything is written; the Refused names the first bad row."""
    out: list[ParcelRow] = []
    seen: set[str] = set()
    for n, raw in enumerate(rows, start=1):
        if n > MAX_IMPORT:
            raise _refused(n, "parcels", f"at most {MAX_IMPORT} parcels per import")
        if not isinstance(raw, Mapping):
            raise _refused(n, "parcel", "must be an object with " + ", ".join(FIELDS))
        trk = _text(n, raw, "tracking_no", wire.MAX_TEXT)
        if trk in seen:
            # 409, not 400: no JSON Schema can say "distinct by tracking_no" (docs/api.md).
            raise Refused(
                409,
                "DUPLICATE_PARCEL",
                f"row {n}, tracking_no: {trk} appears twice in this import",
                f"parcels[{n - 1}].tracking_no",
            )
        seen.add(trk)
        seller = _text(n, raw, "seller_id", 32)
        status = raw.get("status")
        status = status.strip().lower() if isinstance(status, str) else status
        if status not in bag_rules.PARCEL_STATUSES:
            raise _refused(n, "status", f"must be one of {', '.join(bag_rules.PARCEL_STATUSES)}")
        hub = raw.get("hub")
        hub = hub.strip().upper() if isinstance(hub, str) else hub
        if hub not in bag_rules.HUBS:
            raise _refused(n, "hub", f"must be one of {', '.join(bag_rules.HUBS)}")
        big = raw.get("sea_big_item")
        big = big.strip().lower() if isinstance(big, str) else big
        if isinstance(big, list | dict | float):  # a list is unhashable; 1.0 is not a flag
            raise _refused(n, "sea_big_item", "must be true/false (or 1/0)")
        if big in _TRUE:
            sea = True
        elif big in _FALSE:
            sea = False
        else:
            raise _refused(n, "sea_big_item", "must be true/false (or 1/0)")
        out.append(ParcelRow(trk, seller, status, hub, sea))
    if not out:
        raise _refused(None, "parcels", "nothing to import")
    return out


def upsert(session: Session, rows: list[ParcelRow]) -> tuple[int, int]:
    """Write validated rows: new parcels, or the platform's newer state. Returns (new, updated)."""
    now = utcnow()
    existing = {}
    trks = [r.tracking_no for r in rows]
    for i in range(0, len(trks), 500):
        for p in session.scalars(select(Parcel).where(Parcel.tracking_no.in_(trks[i : i + 500]))):
            existing[p.tracking_no] = p
    created = 0
    for r in rows:
        parcel = existing.get(r.tracking_no)
        if parcel is None:
            parcel = Parcel(tracking_no=r.tracking_no, imported_at=now)
            session.add(parcel)
            created += 1
        parcel.seller_id, parcel.status, parcel.hub = r.seller_id, r.status, r.hub
        parcel.sea_big_item = r.sea_big_item
        parcel.updated_at = now
    return created, len(rows) - created


@dataclass(frozen=True)
class HubReceipt:
    tracking_no: str
    bag_no: str | None
    received_at: datetime
    online_at: datetime
    online_reason: str
    already: bool  # received before: the first receipt stands


def receive(session: Session, tracking_nos: list[str], received_at: datetime) -> list[HubReceipt]:
    """The hub signed for these parcels: each gets its received time and its online time.

    The parcels must all be known (the caller refuses the request otherwise). A parcel received
    twice keeps its first receipt and online time. A receipt older than what the parcel's bags
    have seen (the hub signs for parcels before their bags' records reach the gateway, or is
    told late) is applied by replaying those bags in time order (gateway/ingest/replay.py).
    """
    out = []
    for trk in tracking_nos:
        parcel = session.get(Parcel, trk)
        if parcel is None:
            raise Refused(404, "PARCEL_NOT_FOUND", f"parcel {trk!r} was never imported", "parcels")
        bag = bag_of_parcel(session, trk)
        if parcel.received_at is not None and parcel.online_at is not None:
            out.append(
                HubReceipt(
                    trk,
                    bag.bag_no if bag else None,
                    parcel.received_at,
                    parcel.online_at,
                    parcel.online_reason or "",
                    True,
                )
            )
            continue
        if parcel.status != bag_rules.PARCEL_RECEIVED:
            parcel.status_before_receipt = parcel.status
        parcel.status = bag_rules.PARCEL_RECEIVED
        parcel.received_at = received_at
        parcel.updated_at = utcnow()
        claims = registry.claimants(session, trk)
        key = (received_at, registry.receipt_tie(trk))
        late = [b for b in claims if registry.after(b, key)]
        if late:
            replay.replay(session, {b.bag_no: f"late hub receipt of {trk}" for b in late})
            online = online_time.OnlineTime(parcel.online_at, parcel.online_reason)
        else:
            online = online_time.online_time(
                received_at, bag.bag_no if bag else None, bag.picked_up_at if bag else None
            )
            parcel.online_at = online.at
            parcel.online_reason = online.reason
            for claim in claims:
                registry.touch(claim, key)
        out.append(
            HubReceipt(
                trk, bag.bag_no if bag else None, received_at, online.at, online.reason, False
            )
        )
    return out
