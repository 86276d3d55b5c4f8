"""Firmware releases and their rollout (issue 19, docs/ota.md): shared by the API, the admin
page and the ingest's firmware feed (gateway/ingest/firmware_feed.py)."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from gateway.errors import Refused, bad_field
from gateway.models import Device, DeviceUpdate, FirmwareRelease, utcnow
from protocol import ota

# States of a handheld's update (docs/ota.md, "States"): the gateway's own, and the events the
# handheld reports (protocol/ota.py EVENTS). The feed offers the release while the state is
# one of OFFERING and stops at one of DONE.
OFFERED = "offered"  # rolled out; the handheld has not asked for a chunk yet
FETCHING = "fetching"  # the handheld asks for chunks
TRIAL_RUNNING = "trial_running"  # its status names the release: booted, not yet confirmed
STATES = (OFFERED, FETCHING, ota.READY, ota.TRIAL_STARTING, TRIAL_RUNNING, *ota.EVENTS[2:])
OFFERING = (OFFERED, FETCHING, ota.READY, ota.TRIAL_STARTING, TRIAL_RUNNING)
DONE = (ota.TRIAL_CONFIRMED, ota.HASH_MISMATCH, ota.BAD_SIGNATURE, ota.ROLLED_BACK, ota.NO_ROMFS)


def upload(session: Session, data: bytes, username: str | None) -> FirmwareRelease:
    """Store a release file (devkit/release.py). The signature is the handhelds' to check,
    against the key they carry; the gateway keeps it with the hash."""
    parts = ota.split_release(data)
    if parts is None:  # a rule on the bytes, which no schema of a binary body can state
        raise Refused(409, "NOT_A_RELEASE", "not a release file of tools/release build", "body")
    version, packed, signature = parts
    if session.get(FirmwareRelease, version) is not None:
        raise Refused(409, "RELEASE_EXISTS", f"release {version} was uploaded already")
    release = FirmwareRelease(
        version=version,
        sha256=hashlib.sha256(packed).hexdigest(),
        signature=signature.hex(),
        size=len(packed),
        packed=packed,
        uploaded_at=utcnow(),
        uploaded_by=username,
    )
    session.add(release)
    return release


def rollout(
    session: Session,
    version: str,
    device_ids: list[str] | None = None,
    account_id: int | None = None,
) -> list[str]:
    """Offer release version to the listed handhelds, an account's, or (neither) all; a
    handheld's earlier update is replaced. The devices' ids, sorted."""
    if session.get(FirmwareRelease, version) is None:
        raise Refused(404, "NOT_FOUND", f"no release {version}")
    query = select(Device.id).order_by(Device.id)
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    elif account_id is not None:
        query = query.where(Device.account_id == account_id)
    ids = list(session.scalars(query))
    if device_ids is not None and len(ids) != len(set(device_ids)):
        missing = sorted(set(device_ids) - set(ids))
        raise bad_field("devices", f"no such device: {', '.join(missing)}")
    now = utcnow()
    for device_id in ids:
        update = session.get(DeviceUpdate, device_id)
        if update is None:
            update = DeviceUpdate(device_id=device_id)
            session.add(update)
        update.version, update.state, update.fetched, update.updated_at = version, OFFERED, 0, now
    return ids


@dataclass
class UpdateRow:
    device_id: str
    running: str | None  # the version the handheld's status names
    online: bool
    version: str | None
    state: str | None
    fetched: int
    size: int
    updated_at: datetime | None


def update_rows(session: Session) -> list[UpdateRow]:
    """Every handheld with the version it runs and its update, if any (the rollout page)."""
    rows = session.execute(
        select(Device, DeviceUpdate, FirmwareRelease.size)
        .outerjoin(DeviceUpdate, DeviceUpdate.device_id == Device.id)
        .outerjoin(FirmwareRelease, FirmwareRelease.version == DeviceUpdate.version)
        .order_by(Device.id)
    ).all()
    return [
        UpdateRow(
            device_id=d.id,
            running=(d.status or {}).get("fw"),
            online=d.online,
            version=u.version if u else None,
            state=u.state if u else None,
            fetched=u.fetched if u else 0,
            size=size or 0,
            updated_at=u.updated_at if u else None,
        )
        for d, u, size in rows
    ]


def releases(session: Session) -> list[FirmwareRelease]:
    query = select(FirmwareRelease).options(defer(FirmwareRelease.packed))
    return list(session.scalars(query.order_by(FirmwareRelease.uploaded_at)))
