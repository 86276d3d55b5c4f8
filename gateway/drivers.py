"""Drivers: their HMAC signing keys, sealed at rest, and the PIN-wrapped form handhelds unlock.

(product choice) A driver's 32-byte key is random and never stored in plain text:
- `key_sealed` = key XOR HMAC-SHA256(SECRET_KEY, "bagscan-driver-key|" + driver id): the
  gateway unseals it to verify handover signatures; a database dump alone does not reveal it.
- `pin_key` = key XOR sha256(salt + b"key" + PIN), with `pin_check` = sha256(salt + PIN)[:16]:
  what the device config carries (gateway/device_config.py); the handheld checks the PIN
  and unwraps the key. The PIN is not kept. A short PIN can be guessed offline from a config,
  so configs go only to the device's own retained topic (the broker's ACL) and a new PIN
  (re-creating the driver) gives a new key.
"""

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from gateway.models import Driver, utcnow

KEY_BYTES = 32
SALT_BYTES = 8
MAX_ID = 32
MAX_NAME = 64


class DriverError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _seal_pad(secret: bytes, driver_id: str) -> bytes:
    return hmac.new(secret, b"bagscan-driver-key|" + driver_id.encode(), hashlib.sha256).digest()


def pin_check(salt: bytes, pin: str) -> str:
    return hashlib.sha256(salt + pin.encode()).hexdigest()[:16]


def pin_pad(salt: bytes, pin: str) -> bytes:
    return hashlib.sha256(salt + b"key" + pin.encode()).digest()


def unwrap_with_pin(driver: Driver, pin: str) -> bytes | None:
    """What the handheld does: the key, or None for a wrong PIN."""
    salt = bytes.fromhex(driver.pin_salt)
    if not hmac.compare_digest(pin_check(salt, pin), driver.pin_check):
        return None
    return _xor(bytes.fromhex(driver.pin_key), pin_pad(salt, pin))


def key_of(driver: Driver, secret: bytes) -> bytes:
    """The driver's signing key, unsealed with the installation secret."""
    return _xor(bytes.fromhex(driver.key_sealed), _seal_pad(secret, driver.id))


def set_key(driver: Driver, pin: str, secret: bytes, key: bytes | None = None) -> bytes:
    """Give the driver a (new) key under a (new) PIN; returns the key."""
    if not isinstance(pin, str) or not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise DriverError("pin", "pin must be 4-12 digits")
    key = key or secrets.token_bytes(KEY_BYTES)
    salt = secrets.token_bytes(SALT_BYTES)
    driver.key_sealed = _xor(key, _seal_pad(secret, driver.id)).hex()
    driver.pin_salt = salt.hex()
    driver.pin_check = pin_check(salt, pin)
    driver.pin_key = _xor(key, pin_pad(salt, pin)).hex()
    driver.updated_at = utcnow()
    return key


def create(
    session: Session, secret: bytes, driver_id: object, name: object, badge: object, pin: object
) -> Driver:
    """A new driver with a fresh key under `pin`; DriverError names the bad field."""
    if not isinstance(driver_id, str) or not driver_id or len(driver_id) > MAX_ID:
        raise DriverError("id", f"id must be text of 1-{MAX_ID} characters")
    if not driver_id.isascii() or not driver_id.isprintable() or "|" in driver_id:
        raise DriverError("id", "id must be printable ASCII without '|'")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise DriverError("name", f"name must be text of 1-{MAX_NAME} characters")
    if badge is None:
        badge = ""
    if not isinstance(badge, str) or len(badge) > 32:
        raise DriverError("badge", "badge must be text of up to 32 characters")
    if not isinstance(pin, str):
        raise DriverError("pin", "pin must be 4-12 digits, as a string")
    if session.get(Driver, driver_id) is not None:
        raise DriverError("id", f"driver {driver_id!r} exists")
    driver = Driver(id=driver_id, name=name.strip(), badge=badge, active=True)
    set_key(driver, pin, secret)
    session.add(driver)
    return driver


def config_entry(driver: Driver) -> dict:
    """The driver as the device config lists it (gateway/device_config.py)."""
    return {
        "id": driver.id,
        "name": driver.name,
        "badge": driver.badge,
        "salt": driver.pin_salt,
        "check": driver.pin_check,
        "key": driver.pin_key,
    }
