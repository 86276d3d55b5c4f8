"""Handhelds: provisioning (credentials and bag-number range), logins, status and config."""

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from gateway.errors import bad_field
from gateway.ingest import acl
from gateway.models import Device
from protocol import config_schema, wire, wire_schema

# Mosquitto 2's password hash (mosquitto_passwd, "$7$"): PBKDF2-HMAC-SHA512, 12-byte salt,
# 101 iterations by default. Device passwords are 144-bit random tokens, so the iteration
# count guards nothing and a cheap check keeps a fleet's reconnect storm cheap.
MOSQUITTO_ITERATIONS = 101
_SALT_BYTES = 12


def mosquitto_hash(password: str, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """A password hash in the format of Mosquitto 2's password_file ($7$)."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(stored: str, password: str) -> bool:
    """Check a password against a Mosquitto $7$ hash or (older rows) a werkzeug hash."""
    if not stored:
        return False
    if stored.startswith("$7$"):
        try:
            _, _, iterations, salt, digest = stored.split("$")
            expected = base64.b64decode(digest)
            got = hashlib.pbkdf2_hmac(
                "sha512", password.encode(), base64.b64decode(salt), int(iterations)
            )
        except ValueError:
            return False
        return hmac.compare_digest(got, expected)
    return check_password_hash(stored, password)


def provision(session: Session, device_id: str, range_size: int) -> tuple[Device, str]:
    """Create a device, or renew the password of an existing one; returns it and the password.

    The password is shown once; only its hash is kept, in Mosquitto's format, so the broker's
    password file can be written from the database at any time (gateway/ingest/mosquitto_files.py).
    """
    if not wire_schema.device_id_ok(device_id):
        raise bad_field("device_id", "device_id must be 1-32 letters, digits, '-' or '_'")
    if not acl.device_login_ok(device_id):  # the gateway's own MQTT names
        raise bad_field("device_id", f"device_id must not start with {acl.RESERVED_PREFIX!r}")
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
    device.password_hash = mosquitto_hash(password)
    return device, password


def language_error(language: object) -> str | None:
    """Why `language` is not one a handheld's screens speak, or None."""
    if language in config_schema.LANGUAGES:
        return None
    return "language must be one of " + ", ".join(config_schema.LANGUAGES)


def set_language(device: Device, language: object) -> bool:
    """Choose the language of the device's screens; True when it changed (its config is then
    to be published). Raises Refused (400, field language) for one it does not speak."""
    if error := language_error(language):
        raise bad_field("language", error)
    changed = device.language != language
    device.language = str(language)
    return changed


def check_login(session: Session, device_id: str, password: str) -> bool:
    device = session.get(Device, device_id) if wire_schema.device_id_ok(device_id) else None
    return device is not None and check_password(device.password_hash, password)


# The status a device publishes (retained; its last will is {"v":1,"online":false}).
# boot/t/q: boot id, ticks and whether its clock is synced, so the gateway can anchor the
# time of unsynced records of that boot (gateway/ingest/ledger.py occurred_at).
STATUS_FIELDS = {
    "online": bool,
    "fw": str,
    "battery_mv": int,
    "backlog": int,
    "wall": int,
    "boot": int,
    "t": int,
    "q": int,
    # The config version the handheld has taken, its wall time when it took it, and the
    # parcels its index on flash holds (docs/protocol.md, "Config versions").
    "s": int,
    "time": int,
    "n": int,
}


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
    if isinstance(body.get("fw"), str) and not wire.text_ok(body["fw"]):
        return "fw must be printable text of 1..64 characters"
    for name in ("battery_mv", "backlog", "wall", "boot", "t", "n"):
        if name in body and not 0 <= body[name] <= 2**53:
            return name + " out of range"
    extra = set(body) - set(STATUS_FIELDS) - {"v"}
    if extra:
        return "unexpected fields"
    return None


def clock_off(device: Device) -> bool:
    """True when the device's clock was more than ledger.CLOCK_SKEW_LIMIT_S off (admin page)."""
    return bool((device.status or {}).get("clock_off"))


@dataclass(frozen=True)
class ConfigState:
    """Which config a handheld has (issue 16): GET /api/devices and the devices page."""

    version: int  # the last version sent to it
    device_version: int | None  # the version its last status reports
    changed_at: datetime | None  # when its last change arrived (its own clock)
    index_size: int | None  # parcels in its index on flash, when its status says
    behind: bool  # it has not reported the last version sent
    behind_since: datetime | None  # since when, online (gateway/ingest/ledger.py)


def config_state(device: Device) -> ConfigState:
    status = device.status or {}
    taken, at, size = status.get("s"), status.get("time"), status.get("n")
    behind = isinstance(taken, int) and taken < device.config_version
    since = status.get("behind_since") if behind and device.online else None
    return ConfigState(
        version=device.config_version,
        device_version=taken if isinstance(taken, int) else None,
        changed_at=datetime.fromtimestamp(at, UTC) if isinstance(at, int) and at > 0 else None,
        index_size=size if isinstance(size, int) else None,
        behind=behind,
        behind_since=datetime.fromisoformat(since) if isinstance(since, str) else None,
    )


def quarantined(device: Device) -> list[int]:
    """Seqs of records the registry could not apply (newest last), for the admin page."""
    return list((device.status or {}).get("quarantined") or [])
