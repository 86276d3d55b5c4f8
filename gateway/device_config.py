"""The retained per-device config the handheld consumes (topic bagscan/v1/dev/<id>/config).

Fields (docs/api.md, "Device config"): v, time, bag_range, parcels, stores, store_names, unknown_parcel,
drivers, arrival_tolerance_g, arrival_tolerance_pct, bags. The whole payload stays within
wire.MAX_MESSAGE bytes, filled in this order of importance:
1. the fixed fields and the linked stores;
2. drivers (at most MAX_DRIVERS, most recently updated first);
3. for a hub device, bags in transit with their bagging weight (newest pickups first);
4. the parcel cache: the account's parcels, most recently changed first, as many as fit.
A parcel missing from the cache is handled by `unknown_parcel` and re-checked by the gateway
when the record arrives (gateway/registry.py).
"""

import json
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware.app import wire
from gateway import drivers, settings
from gateway.domain import lifecycle
from gateway.models import Bag, Device, Driver, Parcel, Store

MAX_DRIVERS = 40  # ~200 bytes each: at most half the message
MAX_BAGS = 300
PARCEL_QUERY_LIMIT = 2000  # more never fit (about 45 bytes each)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fill(entries: list[str], budget: int) -> tuple[str, int]:
    """A JSON object/array body from `entries` that fits `budget` bytes; returns (body, used)."""
    taken: list[str] = []
    used = 0
    for entry in entries:
        size = len(entry.encode()) + (1 if taken else 0)
        if used + size > budget:
            break
        taken.append(entry)
        used += size
    return ",".join(taken), used


def build(session: Session, device: Device, now: datetime | None = None) -> dict:
    """The config as a dict, already bounded to wire.MAX_MESSAGE once encoded."""
    return json.loads(payload(session, device, now))


def payload(session: Session, device: Device, now: datetime | None = None) -> bytes:
    config = settings.of(session)
    now = now or datetime.now(UTC)
    linked = (
        session.execute(
            select(Store.seller_id, Store.seller_name)
            .where(Store.account_id == device.account_id)
            .order_by(Store.seller_id)
        ).all()
        if device.account_id is not None
        else []
    )
    stores = [seller_id for seller_id, _ in linked]
    head = {
        "v": wire.VERSION,
        "time": int(now.timestamp()),
        "bag_range": [device.bag_range_lo, device.bag_range_hi],
        "stores": stores,
        # The seller's name is part of the handover message the driver signs.
        "store_names": {seller_id: name for seller_id, name in linked},
        "unknown_parcel": config["UNKNOWN_PARCEL"],
        "arrival_tolerance_g": int(config["ARRIVAL_TOLERANCE_G"]),
        "arrival_tolerance_pct": float(config["ARRIVAL_TOLERANCE_PCT"]),
    }
    # Assemble by hand so each section can be cut to what still fits.
    budget = (
        wire.MAX_MESSAGE - len(_dump(head).encode()) - len(',"drivers":[],"bags":{},"parcels":{}')
    )
    active = session.scalars(
        select(Driver).where(Driver.active).order_by(Driver.updated_at.desc()).limit(MAX_DRIVERS)
    )
    driver_body, used = _fill([_dump(drivers.config_entry(d)) for d in active], budget)
    budget -= used

    bag_entries: list[str] = []
    if device.role == "hub":
        in_transit = session.execute(
            select(Bag.bag_no, Bag.weight_g)
            .where(
                Bag.status.in_([lifecycle.PICKED_UP, lifecycle.ARRIVED]), Bag.weight_g.is_not(None)
            )
            .order_by(Bag.picked_up_at.desc())
            .limit(MAX_BAGS)
        )
        bag_entries = [f"{_dump(no)}:{int(g)}" for no, g in in_transit]
    bag_body, used = _fill(bag_entries, budget)
    budget -= used

    parcel_entries: list[str] = []
    if stores:
        newest = session.scalars(
            select(Parcel)
            .where(Parcel.seller_id.in_(stores))
            .order_by(Parcel.updated_at.desc(), Parcel.tracking_no)
            .limit(PARCEL_QUERY_LIMIT)
        )
        parcel_entries = [
            f"{_dump(p.tracking_no)}:"
            + _dump([p.status, p.hub, p.seller_id, 1 if p.sea_big_item else 0])
            for p in newest
        ]
    parcel_body, _ = _fill(parcel_entries, budget)

    text = (
        _dump(head)[:-1]
        + f',"drivers":[{driver_body}],"bags":{{{bag_body}}},"parcels":{{{parcel_body}}}}}'
    )
    data = text.encode()
    if len(data) > wire.MAX_MESSAGE:  # only a bug gets here: never publish an unreadable config
        raise RuntimeError(f"device config of {len(data)} bytes over {wire.MAX_MESSAGE}")
    return data


def publish(session: Session, device_ids: list[str] | None = None) -> int:
    """Republish the configs of some devices (all by default) when this process can publish
    (the ingest worker, or an HTTP worker's publisher: gateway.serve).

    Returns how many were published; 0 when there is no publisher (tests, CLI).
    """
    publisher = current_app.extensions.get("bagscan.publisher")
    if publisher is None:
        return 0
    query = select(Device).order_by(Device.id)
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    count = 0
    for device in session.scalars(query):
        publisher.publish_config(device.id, payload(session, device))
        count += 1
    return count
