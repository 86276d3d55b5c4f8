"""Parcels: the platform import (all or nothing) and their receipt at the hub (online time)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware.app import wire
from gateway.domain import bag_rules, online_time
from gateway.models import Parcel, utcnow
from gateway.registry import bag_of_parcel

FIELDS = ("tracking_no", "seller_id", "status", "hub", "sea_big_item")
MAX_IMPORT = 20000  # rows per import: one transaction, kept short
_TRUE = {True, "1", "true", "yes", "y"}
_FALSE = {False, "0", "false", "no", "n", "", None}


class ImportRefused(ValueError):
    """One bad row refuses the whole import; `row` counts from 1, `field` names the column."""

    def __init__(self, row: int | None, field: str, message: str):
        where = f"row {row}, " if row is not None else ""
        super().__init__(f"{where}{field}: {message}")
        self.row, self.field, self.message = row, field, message


@dataclass(frozen=True)
class ParcelRow:
    tracking_no: str
    seller_id: str
    status: str
    hub: str
    sea_big_item: bool


def _text(row: int, raw: Mapping, field: str, limit: int) -> str:
    value = raw.get(field)
    if isinstance(value, str):
        value = value.strip()
    if not isinstance(value, str) or not value or len(value) > limit or not wire.text_ok(value):
        raise ImportRefused(row, field, f"must be printable text of 1-{limit} characters")
    return value


def validate(rows: Iterable[object]) -> list[ParcelRow]:
    """Every row checked before anything is written; ImportRefused names the first bad one."""
    out: list[ParcelRow] = []
    seen: set[str] = set()
    for n, raw in enumerate(rows, start=1):
        if n > MAX_IMPORT:
            raise ImportRefused(n, "parcels", f"at most {MAX_IMPORT} parcels per import")
        if not isinstance(raw, Mapping):
            raise ImportRefused(n, "parcel", "must be an object with " + ", ".join(FIELDS))
        trk = _text(n, raw, "tracking_no", wire.MAX_TEXT)
        if trk in seen:
            raise ImportRefused(n, "tracking_no", f"{trk} appears twice in this import")
        seen.add(trk)
        seller = _text(n, raw, "seller_id", 32)
        status = raw.get("status")
        status = status.strip().lower() if isinstance(status, str) else status
        if status not in bag_rules.PARCEL_STATUSES:
            raise ImportRefused(
                n, "status", f"must be one of {', '.join(bag_rules.PARCEL_STATUSES)}"
            )
        hub = raw.get("hub")
        hub = hub.strip().upper() if isinstance(hub, str) else hub
        if hub not in bag_rules.HUBS:
            raise ImportRefused(n, "hub", f"must be one of {', '.join(bag_rules.HUBS)}")
        big = raw.get("sea_big_item")
        big = big.strip().lower() if isinstance(big, str) else big
        if big in _TRUE and not isinstance(big, float):
            sea = True
        elif big in _FALSE and not isinstance(big, float):
            sea = False
        else:
            raise ImportRefused(n, "sea_big_item", "must be true/false (or 1/0)")
        out.append(ParcelRow(trk, seller, status, hub, sea))
    if not out:
        raise ImportRefused(None, "parcels", "nothing to import")
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
    twice keeps its first receipt and online time.
    """
    out = []
    for trk in tracking_nos:
        parcel = session.get(Parcel, trk)
        if parcel is None:
            raise ImportRefused(None, "tracking_no", f"parcel {trk} was never imported")
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
        online = online_time.online_time(
            received_at, bag.bag_no if bag else None, bag.picked_up_at if bag else None
        )
        parcel.status = bag_rules.PARCEL_RECEIVED
        parcel.received_at = received_at
        parcel.online_at = online.at
        parcel.online_reason = online.reason
        parcel.updated_at = utcnow()
        out.append(
            HubReceipt(
                trk, bag.bag_no if bag else None, received_at, online.at, online.reason, False
            )
        )
    return out
