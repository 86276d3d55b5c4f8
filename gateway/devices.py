"""Handhelds: provisioning (credentials and bag-number range), logins, status and config."""

import json
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from firmware.app import wire
from gateway.models import Device


class ProvisionError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def provision(session: Session, device_id: str, range_size: int) -> tuple[Device, str]:
    """Create a device, or renew the password of an existing one; returns it and the password.

    The password is shown once and only its hash is kept.
    """
    if not wire.device_id_ok(device_id):
        raise ProvisionError("device_id", "device_id must be 1-32 letters, digits, '-' or '_'")
    password = secrets.token_urlsafe(18)
    device = session.get(Device, device_id)
    if device is None:
        top = session.scalar(select(func.max(Device.bag_range_hi))) or 0
        device = Device(
            id=device_id,
            password_hash="",
            bag_range_lo=top + 1,
            bag_range_hi=top + range_size,
            applied_seq=0,
            online=False,
        )
        session.add(device)
    device.password_hash = generate_password_hash(password)
    return device, password


def check_login(session: Session, device_id: str, password: str) -> bool:
    device = session.get(Device, device_id) if wire.device_id_ok(device_id) else None
    return device is not None and check_password_hash(device.password_hash, password)


def config_payload(device: Device) -> bytes:
    """The retained per-device config (docs/protocol.md)."""
    return json.dumps(
        {
            "v": wire.VERSION,
            "time": int(datetime.now(UTC).timestamp()),
            "bag_range": [device.bag_range_lo, device.bag_range_hi],
        },
        separators=(",", ":"),
    ).encode()


STATUS_FIELDS = {"online": bool, "fw": str, "battery_mv": int, "backlog": int, "wall": int}


def status_error(body: object) -> str | None:
    if not isinstance(body, dict) or body.get("v") != wire.VERSION:
        return "not a v1 message"
    for name, kind in STATUS_FIELDS.items():
        value = body.get(name)
        if value is not None and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            return f"{name} must be {kind.__name__}"
    if not isinstance(body.get("online"), bool):
        return "online is required"
    return None


def record_status(session: Session, device_id: str, status: dict, now: datetime) -> None:
    device = session.get(Device, device_id)
    if device is None:
        return
    device.online = status["online"]
    device.status = {k: status[k] for k in STATUS_FIELDS if k in status}
    if status.get("wall"):
        device.status["clock_skew_s"] = status["wall"] - int(now.timestamp())
    device.last_seen = now
