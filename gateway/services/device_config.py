"""The retained per-device config the handheld consumes (topic bagscan/v1/dev/<id>/config).

Its fields and entries are protocol/config_schema.py's (docs/api.md, "Device config"), the
schema the handheld's parser follows too. The whole payload stays within
wire.MAX_MESSAGE bytes, filled in this order of importance:
1. the fixed fields and the linked stores;
2. for a seller device, the drivers of its account's route only, each with its key for that
   account (gateway/services/couriers.py; at most MAX_DRIVERS, most recently updated first);
3. for a hub device, bags in transit with their bagging weight (newest pickups first); for a
   seller device, its account's bags awaiting pickup, which the courier's scans count;
4. the parcel cache: the account's parcels, most recently changed first, as many as fit.
An account with more parcels than fit gets them all, up to MAX_INDEX, as a base index in
pages (index_file, sent by gateway/ingest/config_feed.py; docs/protocol.md "Index pages").
A parcel missing from both is asked for online, or handled by `unknown_parcel`, and
re-checked by the gateway when the record arrives (gateway/ingest/registry.py).
"""

import base64
import json
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway import clock, settings
from gateway.domain import bag_rules, handheld_glyphs, lifecycle
from gateway.models import Bag, BagParcel, Device, Parcel, Store
from gateway.services import couriers
from protocol import config_schema, receipt, wire

# A parcel's columns its entry is made of (config_schema.parcel_entry), with the tracking number.
ENTRY_COLUMNS = (
    Parcel.tracking_no,
    Parcel.status,
    Parcel.hub,
    Parcel.seller_id,
    Parcel.sea_big_item,
)
MAX_DRIVERS = 40  # ~200 bytes each: at most half the message
MAX_BAGS = 300
# Glyphs of names (34 bytes each with its code point): a seller's stores and the couriers of
# its route take a few dozen; more are left out and the handheld draws a box for them.
MAX_NAME_GLYPHS = 64
# Devices numbered in one statement: SQLite takes 32,766 parameters, PostgreSQL 65,535.
VERSION_CHUNK = 5000
PARCEL_QUERY_LIMIT = 2000  # more never fit (about 45 bytes each)
# Parcels in a handheld's base index: 3 bytes each on flash (up to 256 distinct entries), 41
# LittleFS blocks at 50,000, which the journal's 1.5 MiB leaves room for (docs/firmware.md,
# "Parcel index"; 60,000 took 8 blocks more and did not fit).
MAX_INDEX = 50_000


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


def name_glyphs(names: list[str]) -> str | None:
    """The config's "glyphs" for the names a handheld shows (its stores', its couriers'): the
    base64 of a font file of their characters past ASCII, or None when they have none."""
    wide = sorted({c for name in names for c in name if handheld_glyphs.is_wide(c)})
    if not wide:
        return None
    return base64.b64encode(handheld_glyphs.font_file(set(wide[:MAX_NAME_GLYPHS]))).decode()


def account_names(session: Session, account_id: int) -> list[str]:
    """The names a seller's handheld of the account shows: its stores' and its couriers'."""
    stores = session.scalars(select(Store.seller_name).where(Store.account_id == account_id))
    drivers = couriers.drivers_of(session, account_id, MAX_DRIVERS)
    return [*stores, *(d.name for d in drivers)]


def next_version(session: Session, device_id: str) -> int:
    """Number the next config or delta of a device (docs/protocol.md, "Config versions")."""
    return next_versions(session, [device_id])[device_id]


def next_versions(session: Session, device_ids: list[str]) -> dict[str, int]:
    """Number the next config or delta of each device: UPDATE ... RETURNING, so two processes
    sending to one device never share a number, and a change for a fleet (a parcel cancelled
    for 10,000 handhelds of an account) costs a statement per VERSION_CHUNK devices, not two
    a device. Sorted, so that two processes lock the rows in one order."""
    versions: dict[str, int] = {}
    ids = sorted(device_ids)
    for i in range(0, len(ids), VERSION_CHUNK):
        rows = session.execute(
            update(Device)
            .where(Device.id.in_(ids[i : i + VERSION_CHUNK]))
            .values(config_version=Device.config_version + 1)
            .returning(Device.id, Device.config_version)
        )
        versions.update((device_id, version) for device_id, version in rows)
    return versions


def payload(
    session: Session, device: Device, now: datetime | None = None, version: int | None = None
) -> bytes:
    """The full config; version, its "s", when it is sent (next_version)."""
    config = settings.of(session)
    now = now or clock.now()
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
        # FAQ 10's channels open to bagging, a setting (docs/domain.md, "Baggable hubs").
        "baggable_hubs": list(config["BAGGABLE_HUBS"]),
    }
    if version is not None:
        head["s"] = version
    # The screens' language, and what the door receipt's QR code leads to (issue 18).
    head["screen_lang"] = device.language
    door_url = str(config.get("PUBLIC_URL") or "")
    if receipt.door_text(door_url, "0", "0") is not None:
        head["receipt_url"] = door_url
    drivers: list[str] = []
    names = [name for _, name in linked]
    if device.role == "seller" and device.account_id is not None:
        secret = settings.secret(session)
        entries = [
            couriers.config_entry(d, secret, device.account_id)
            for d in couriers.drivers_of(session, device.account_id, MAX_DRIVERS)
        ]
        drivers = [_dump(e) for e in entries]
        names += [e["name"] for e in entries]
    if glyphs := name_glyphs(names):
        head[config_schema.GLYPHS] = glyphs
    # Assemble by hand so each section can be cut to what still fits.
    budget = (
        wire.MAX_MESSAGE - len(_dump(head).encode()) - len(',"drivers":[],"bags":{},"parcels":{}')
    )
    driver_body, used = _fill(drivers, budget)
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
        bag_entries = [f"{_dump(no)}:{_dump(config_schema.bag_entry(g))}" for no, g in in_transit]
    elif device.account_id is not None:
        awaiting = session.execute(
            select(Bag.bag_no, Bag.weight_g)
            .where(
                Bag.account_id == device.account_id,
                Bag.status == lifecycle.AWAITING_PICKUP,
                Bag.weight_g.is_not(None),
            )
            .order_by(Bag.closed_at.desc())
            .limit(MAX_BAGS)
        )
        bag_entries = [f"{_dump(no)}:{_dump(config_schema.bag_entry(g))}" for no, g in awaiting]
    bag_body, used = _fill(bag_entries, budget)
    budget -= used

    parcel_entries: list[str] = []
    if stores:
        newest = session.execute(
            _parcel_rows(device.id)
            .where(Parcel.seller_id.in_(stores))
            .order_by(Parcel.updated_at.desc(), Parcel.tracking_no)
            .limit(PARCEL_QUERY_LIMIT)
        )
        parcel_entries = [f"{_dump(p.tracking_no)}:{_dump(_parcel_entry(p))}" for p in newest]
    parcel_body, _ = _fill(parcel_entries, budget)

    text = (
        _dump(head)[:-1]
        + f',"drivers":[{driver_body}],"bags":{{{bag_body}}},"parcels":{{{parcel_body}}}}}'
    )
    data = text.encode()
    # Only a bug gets past these: never publish a config the handheld cannot read.
    if len(data) > wire.MAX_MESSAGE:
        raise RuntimeError(f"device config of {len(data)} bytes over {wire.MAX_MESSAGE}")
    error = config_schema.config_error(json.loads(text))
    if error:
        raise RuntimeError(f"device config off its schema: {error}")
    return data


def _linked_stores(session: Session, device: Device) -> list[str]:
    if device.role != "seller" or device.account_id is None:
        return []
    return list(
        session.scalars(select(Store.seller_id).where(Store.account_id == device.account_id))
    )


def index_state(session: Session, device: Device) -> tuple[int, datetime | None]:
    """(the parcels a handheld's index should hold: its account's, up to MAX_INDEX; when the
    newest of them changed). A handheld whose status reports fewer ("n") is sent its
    account's index_file in pages; an index built for the same state is the same."""
    stores = _linked_stores(session, device)
    if not stores:
        return 0, None
    count, newest = session.execute(
        select(func.count(), func.max(Parcel.updated_at)).where(Parcel.seller_id.in_(stores))
    ).one()
    return min(count or 0, MAX_INDEX), newest


def index_file(session: Session, device: Device) -> bytes:
    """The base index of the account's parcels, most recently changed first, up to
    MAX_INDEX (protocol/config_schema.py index_file; sent with config_schema.index_pages)."""
    stores = _linked_stores(session, device)
    rows = session.execute(
        _parcel_rows(device.id)
        .where(Parcel.seller_id.in_(stores))
        .order_by(Parcel.updated_at.desc(), Parcel.tracking_no)
        .limit(MAX_INDEX)
    )
    return config_schema.index_file({p.tracking_no: _parcel_entry(p) for p in rows})


def _parcel_rows(device_id: str):
    """A parcel's columns for its entry, and whether a bag of another handheld holds it: a
    full config or index keeps what the config feed's "bagged" deltas told the handheld
    (gateway/ingest/config_feed.py), or a resync would let it bag the parcel again. Its own
    bags the handheld knows itself."""
    elsewhere = (
        select(BagParcel.id)
        .join(Bag, Bag.id == BagParcel.bag_id)
        .where(
            BagParcel.tracking_no == Parcel.tracking_no,
            BagParcel.held_out.is_(None),
            Bag.device_id != device_id,
            Bag.status.not_in(lifecycle.RELEASES_PARCELS),
        )
        .exists()
    )
    return select(*ENTRY_COLUMNS, elsewhere.label("bagged"))


def _parcel_entry(p) -> list:
    # Received or cancelled says more than "bagged": the handheld refuses with that code.
    bagged = p.bagged and p.status in (bag_rules.PENDING, bag_rules.RTS)
    status = config_schema.BAGGED if bagged else p.status
    return config_schema.parcel_entry(status, p.hub, p.seller_id, p.sea_big_item)


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
    sent = []
    for device in session.scalars(query).all():
        sent.append((device.id, payload(session, device, version=next_version(session, device.id))))
    # Numbered in the caller's transaction: sent once it is committed, so a version the
    # devices see is never rolled back.
    session.commit()
    for device_id, data in sent:
        publisher.publish_config(device_id, data)
    return len(sent)
