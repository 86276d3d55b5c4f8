"""The bag registry: applies device records (already validated by firmware.app.wire) to bags."""

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Bag, BagHistory, BagParcel, Device, Record

log = logging.getLogger(__name__)


def apply(session: Session, device: Device, record: Record) -> None:
    handler = _HANDLERS[record.kind]
    handler(session, device, record.body, record.occurred_at)


def set_status(session: Session, bag: Bag, to: str, at: datetime, cause: str, actor: str) -> None:
    session.add(
        BagHistory(bag=bag, at=at, from_status=bag.status, to_status=to, cause=cause, actor=actor)
    )
    bag.status = to


def _bag(session: Session, device: Device, bag_no: str, at: datetime) -> Bag:
    bag = session.scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()
    if bag is None:
        bag = Bag(bag_no=bag_no, device_id=device.id, status="submitted", opened_at=at)
        session.add(bag)
        session.add(
            BagHistory(
                bag=bag,
                at=at,
                from_status=None,
                to_status="submitted",
                cause="bag opened on the handheld",
                actor=device.id,
            )
        )
        session.flush()
    return bag


def _bag_open(session: Session, device: Device, rec: dict, at: datetime) -> None:
    _bag(session, device, rec["bag"], at)


def _parcel(session: Session, device: Device, rec: dict, at: datetime) -> None:
    bag = _bag(session, device, rec["bag"], at)
    exists = session.scalars(
        select(BagParcel.id).where(BagParcel.bag_id == bag.id, BagParcel.tracking_no == rec["trk"])
    ).first()
    if exists is None:
        session.add(BagParcel(bag=bag, tracking_no=rec["trk"], added_at=at))
        bag.parcel_count += 1


def _parcel_remove(session: Session, device: Device, rec: dict, at: datetime) -> None:
    bag = _bag(session, device, rec["bag"], at)
    member = session.scalars(
        select(BagParcel).where(BagParcel.bag_id == bag.id, BagParcel.tracking_no == rec["trk"])
    ).first()
    if member is not None:
        session.delete(member)
        bag.parcel_count -= 1


def _weigh(session: Session, device: Device, rec: dict, at: datetime) -> None:
    _bag(session, device, rec["bag"], at).weight_g = rec["g"]


def _bag_close(session: Session, device: Device, rec: dict, at: datetime) -> None:
    bag = _bag(session, device, rec["bag"], at)
    bag.weight_g = rec["g"]
    bag.dims_cm = rec["dims"]
    bag.closed_at = at
    # The handheld numbers bags from the range we assigned it, so a closed bag has its number.
    set_status(session, bag, "awaiting_bag_number", at, "bag closed on the handheld", device.id)
    set_status(session, bag, "awaiting_pickup", at, "bag number from the device's range", device.id)


_HANDLERS = {
    "bag_open": _bag_open,
    "parcel": _parcel,
    "parcel_remove": _parcel_remove,
    "weigh": _weigh,
    "bag_close": _bag_close,
}
