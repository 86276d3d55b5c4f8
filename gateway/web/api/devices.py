"""Handhelds: the device list with each one's progress, and provisioning a device."""

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select

from gateway import db
from gateway.errors import Refused, bad_field
from gateway.models import Account, Address, Device, Record
from gateway.services import device_config, devices
from gateway.web.api.parsing import body, db_id, iso

bp = Blueprint("devices", __name__)


def device_json(d: Device, unapplied: int) -> dict[str, Any]:
    return {
        "device_id": d.id,
        "role": d.role,
        "language": d.language,
        "account_id": d.account_id,
        "pickup_address_id": d.pickup_address_id,
        "bag_range": [d.bag_range_lo, d.bag_range_hi],
        "applied_seq": d.applied_seq,
        # Stored (so acknowledged) but not yet applied to bags: under load the bags follow
        # the acknowledgements (docs/protocol.md, step 5).
        "unapplied": unapplied,
        "online": d.online,
        "last_seen": iso(d.last_seen),
        "status": d.status,
        "config": config_json(d),
    }


def config_json(d: Device) -> dict[str, Any]:
    """The config versions of a device: sent, and taken as its status last said (issue 16)."""
    state = devices.config_state(d)
    return {
        "version": state.version,
        "device_version": state.device_version,
        "changed_at": iso(state.changed_at),
        "index_size": state.index_size,
        # Behind: the handheld has not reported the last version sent to it.
        "behind": state.behind,
        "behind_since": iso(state.behind_since),
    }


@bp.get("/devices")
def list_devices():
    session = db.session()
    rows = session.scalars(select(Device).order_by(Device.id)).all()
    unapplied = dict(
        session.execute(
            select(Record.device_id, func.count())
            .join(Device, Device.id == Record.device_id)
            .where(Record.seq > Device.applied_seq)
            .group_by(Record.device_id)
        ).all()
    )
    return jsonify(devices=[device_json(d, unapplied.get(d.id, 0)) for d in rows])


def _binding(found: dict) -> dict[str, Any]:
    """The role, account and pickup address given for a device (only the keys present)."""
    session = db.session()
    out: dict[str, Any] = {}
    if "role" in found:
        if found["role"] not in ("seller", "hub"):
            raise bad_field("role", "role must be seller or hub")
        out["role"] = found["role"]
    if "language" in found:
        if error := devices.language_error(found["language"]):
            raise bad_field("language", error)
        out["language"] = found["language"]
    account_id = found.get("account_id")
    if "account_id" in found and account_id is not None:
        if db_id(account_id) is None:
            raise bad_field("account_id", "account_id must be an account's id or null")
        account_id = db_id(account_id)
        if session.get(Account, account_id) is None:
            raise Refused(404, "ACCOUNT_NOT_FOUND", f"no account {account_id}", "account_id")
    if "account_id" in found:
        out["account_id"] = account_id
    if "pickup_address_id" in found:
        address_id = found["pickup_address_id"]
        if address_id is not None and db_id(address_id) is None:
            raise bad_field("pickup_address_id", "pickup_address_id must be an address id or null")
        address_id = db_id(address_id) if address_id is not None else None
        address = session.get(Address, address_id) if address_id is not None else None
        if address_id is not None and (
            address is None or address.kind != "pickup" or address.account_id != account_id
        ):
            raise Refused(
                404,
                "ADDRESS_NOT_FOUND",
                f"the device's account has no pickup address {address_id}",
                "pickup_address_id",
            )
        out["pickup_address_id"] = address_id
    return out


@bp.patch("/devices/<device_id>")
def update_device(device_id: str):
    """Change what a provisioned handheld is told: today the language of its screens."""
    found = body()
    session = db.session()
    device = session.get(Device, device_id)
    if device is None:
        raise Refused(404, "DEVICE_NOT_FOUND", f"no device {device_id!r}", "device_id")
    unknown = sorted(set(found) - {"language"})
    if unknown:
        raise bad_field(unknown[0], f"{unknown[0]} cannot be changed here")
    changed = "language" in found and devices.set_language(device, found["language"])
    session.commit()
    if changed:
        device_config.publish(session, [device.id])
    unapplied = session.scalar(
        select(func.count()).where(Record.device_id == device.id, Record.seq > device.applied_seq)
    )
    return jsonify(device_json(device, unapplied or 0))


@bp.post("/devices")
def create_device():
    found = body()
    session = db.session()
    replace = found.get("replace", False)
    if not isinstance(replace, bool):
        raise bad_field("replace", "replace must be true or false")
    device_id = found.get("device_id")
    if isinstance(device_id, str) and session.get(Device, device_id) is not None and not replace:
        raise Refused(
            409,
            "DEVICE_EXISTS",
            f'device {device_id!r} exists; send "replace": true to renew its password',
            "device_id",
        )
    binding = _binding(found)
    device, password = devices.provision(session, device_id, current_app.config["BAG_RANGE_SIZE"])
    for name, value in binding.items():
        setattr(device, name, value)
    session.commit()
    device_config.publish(session, [device.id])
    return jsonify(
        device_id=device.id,
        mqtt={
            "host": current_app.config["DEVICE_MQTT_HOST"],
            "port": int(current_app.config["DEVICE_MQTT_PORT"]),
            "user": device.id,
            "password": password,
            "tls": bool(current_app.config.get("DEVICE_MQTT_TLS", False)),
        },
        bag_range=[device.bag_range_lo, device.bag_range_hi],
    ), 201
