"""Idempotent storage of device records and their in-order application to the bag registry.

A device's records are applied strictly in sequence order: a record that arrives after a gap
is stored but waits until the gap is filled (the device resends from its oldest unacknowledged
record). The acknowledgement we send is the device's applied_seq, so it is cumulative and
never covers a missing record.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway import registry
from gateway.models import Device, Record

log = logging.getLogger(__name__)


def occurred_at(rec: dict, received_at: datetime) -> datetime:
    """The device's time of an action: its wall clock when synced, else our receipt time."""
    if rec["q"] and rec["w"]:
        return datetime.fromtimestamp(rec["w"], UTC)
    return received_at


def store(session: Session, device_id: str, records: list[dict], received_at: datetime) -> int:
    """Store records of one device and apply what is now contiguous; returns the ack sequence.

    The caller commits. The device row is locked so that gateways sharing a subscription
    apply one device's records one at a time.
    """
    device = session.execute(
        select(Device).where(Device.id == device_id).with_for_update()
    ).scalar_one_or_none()
    if device is None:
        log.warning("records from unknown device %s dropped", device_id)
        return 0
    fresh = [r for r in records if r["s"] > device.applied_seq]
    if fresh:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        rows = [
            {
                "device_id": device_id,
                "seq": r["s"],
                "boot": r["b"],
                "kind": r["k"],
                "ticks": r["t"],
                "wall": r["w"],
                "clock_ok": bool(r["q"]),
                "body": r,
                "received_at": received_at,
                "occurred_at": occurred_at(r, received_at),
            }
            for r in fresh
        ]
        session.execute(insert(Record).values(rows).on_conflict_do_nothing())
        _apply_contiguous(session, device)
    device.last_seen = received_at
    return device.applied_seq


def _apply_contiguous(session: Session, device: Device) -> None:
    pending = session.scalars(
        select(Record)
        .where(Record.device_id == device.id, Record.seq > device.applied_seq)
        .order_by(Record.seq)
    )
    for record in pending:
        if record.seq != device.applied_seq + 1:
            break
        registry.apply(session, device, record)
        device.applied_seq = record.seq
