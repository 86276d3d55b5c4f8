"""Drivers: their HMAC signing keys, sealed at rest, and the PIN-wrapped form handhelds unlock.

(product choice) A driver's 32-byte key is random and never stored in plain text:
- `key_sealed` = key XOR HMAC-SHA256(SECRET_KEY, "bagscan-driver-key|" + driver id): the
  gateway unseals it to verify handover signatures; a database dump alone does not reveal it.
- `pin_key` = key XOR sha256(salt + b"key" + PIN), with `pin_check` = sha256(salt + PIN)[:16].
  The PIN is not kept.

(product choice, issue 21) A driver serves a route: the seller accounts in driver_accounts.
A device config carries only the drivers of its account's route, and not their key: each
entry wraps, under the same PIN pad, the driver's *route key* for that account,
HMAC-SHA256(key, "bagscan-driver-account|<account id>"); the gateway verifies a handover
with the route key of the seller's account, and only while that account is on the driver's
route. A short PIN can be guessed offline from a leaked config: that gives the route keys of
that account's drivers, which sign for that account's sellers only (docs/protocol.md,
"What a leaked config allows").
"""

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import storable
from gateway.errors import Refused, bad_field
from gateway.models import Account, Driver, DriverAccount, Store, utcnow

KEY_BYTES = 32
SALT_BYTES = 8
MAX_ID = 32
MAX_NAME = 64


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


def route_key(driver: Driver, secret: bytes, account_id: int) -> bytes:
    """The key the driver signs an account's handovers with, derived from its own key."""
    message = b"bagscan-driver-account|%d" % account_id
    return hmac.new(key_of(driver, secret), message, hashlib.sha256).digest()


def route(session: Session, driver: Driver) -> list[int]:
    """The ids of the accounts on the driver's route."""
    return list(
        session.scalars(
            select(DriverAccount.account_id)
            .where(DriverAccount.driver_id == driver.id)
            .order_by(DriverAccount.account_id)
        )
    )


def signing_key(
    session: Session, driver: Driver, secret: bytes, store: Store | None
) -> bytes | None:
    """The key a handover for `store`'s seller must be signed with, or None when its account is
    not on the driver's route (then no signature of this driver holds for it)."""
    if store is None or store.account_id is None:
        return None
    if session.get(DriverAccount, (driver.id, store.account_id)) is None:
        return None
    return route_key(driver, secret, store.account_id)


def set_route(session: Session, driver: Driver, account_ids: object) -> None:
    """Make the driver's route exactly these accounts; Refused names the bad field."""
    if not isinstance(account_ids, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in account_ids
    ):
        raise bad_field("accounts", "accounts must be a list of account ids")
    for account_id in account_ids:
        if not -(2**31) <= account_id < 2**31 or session.get(Account, account_id) is None:
            raise bad_field("accounts", f"no account {account_id}")
    for row in session.scalars(select(DriverAccount).where(DriverAccount.driver_id == driver.id)):
        session.delete(row)
    session.flush()
    for account_id in dict.fromkeys(account_ids):
        session.add(DriverAccount(driver_id=driver.id, account_id=account_id))
    driver.updated_at = utcnow()


def drivers_of(session: Session, account_id: int, limit: int) -> list[Driver]:
    """The active drivers with the account on their route, most recently updated first."""
    return list(
        session.scalars(
            select(Driver)
            .join(DriverAccount, DriverAccount.driver_id == Driver.id)
            .where(Driver.active, DriverAccount.account_id == account_id)
            .order_by(Driver.updated_at.desc(), Driver.id)
            .limit(limit)
        )
    )


def set_key(driver: Driver, pin: str, secret: bytes, key: bytes | None = None) -> bytes:
    """Give the driver a (new) key under a (new) PIN; returns the key."""
    # isascii: str.isdigit() also takes "²" and other scripts' digits, which no keypad types.
    if not isinstance(pin, str) or not (pin.isascii() and pin.isdigit()) or not 4 <= len(pin) <= 12:
        raise bad_field("pin", "pin must be 4-12 digits")
    key = key or secrets.token_bytes(KEY_BYTES)
    salt = secrets.token_bytes(SALT_BYTES)
    driver.key_sealed = _xor(key, _seal_pad(secret, driver.id)).hex()
    driver.pin_salt = salt.hex()
    driver.pin_check = pin_check(salt, pin)
    driver.pin_key = _xor(key, pin_pad(salt, pin)).hex()
    driver.updated_at = utcnow()
    return key


def create(
    session: Session,
    secret: bytes,
    driver_id: object,
    name: object,
    badge: object,
    pin: object,
    accounts: object = None,
) -> Driver:
    """A new driver with a fresh key under `pin`, serving `accounts` (a list of account ids;
    none: on no route yet); Refused names the bad field."""
    if not isinstance(driver_id, str) or not driver_id or len(driver_id) > MAX_ID:
        raise bad_field("id", f"id must be text of 1-{MAX_ID} characters")
    if not driver_id.isascii() or not driver_id.isprintable() or "|" in driver_id:
        raise bad_field("id", "id must be printable ASCII without '|'")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not storable(name):
        raise bad_field("name", f"name must be text of 1-{MAX_NAME} characters")
    if badge is None:
        badge = ""
    if not isinstance(badge, str) or len(badge) > 32 or not storable(badge):
        raise bad_field("badge", "badge must be text of up to 32 characters")
    if not isinstance(pin, str):
        raise bad_field("pin", "pin must be 4-12 digits, as a string")
    if session.get(Driver, driver_id) is not None:
        raise Refused(409, "DRIVER_EXISTS", f"driver {driver_id!r} exists", "id")
    driver = Driver(id=driver_id, name=name.strip(), badge=badge, active=True)
    set_key(driver, pin, secret)
    session.add(driver)
    session.flush()
    set_route(session, driver, [] if accounts is None else accounts)
    return driver


def config_entry(driver: Driver, secret: bytes, account_id: int) -> dict:
    """The driver as the config of a device of account `account_id` lists it
    (gateway/services/device_config.py): its route key for that account, under its PIN."""
    pad = _xor(bytes.fromhex(driver.pin_key), key_of(driver, secret))  # sha256(salt+"key"+PIN)
    return {
        "id": driver.id,
        "name": driver.name,
        "badge": driver.badge,
        "salt": driver.pin_salt,
        "check": driver.pin_check,
        "key": _xor(route_key(driver, secret, account_id), pad).hex(),
    }
