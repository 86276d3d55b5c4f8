# The driver's signature on a handover: PIN check, key unwrapping and HMAC-SHA256 on the
# device (docs/firmware.md, "Driver key"). MicroPython has no hmac module: RFC 2104 is two
# sha256 passes. The message must match gateway/domain/receipts.py handover_message byte
# for byte; tests/firmware/test_handheld_pickup.py checks it against the gateway's verifier.
# app/pickup.py loads this only for unlock() and signature() (lazy.call).
import binascii
import hashlib

from micropython import const

_MESSAGE_VERSION = const("bagscan-handover-v1")  # receipts.MESSAGE_VERSION
_BLOCK = const(64)  # SHA-256 block size (RFC 2104: B)


def _hex(data):
    return binascii.hexlify(data).decode()


def pin_ok(driver, pin):
    """driver["check"] is hex(sha256(salt + PIN))[:16] (gateway/drivers.py pin_check)."""
    salt = bytes.fromhex(driver["salt"])
    return _hex(hashlib.sha256(salt + pin.encode()).digest())[:16] == driver["check"]


def unwrap_key(driver, pin):
    """The driver's 32-byte key: config "key" XOR sha256(salt + b"key" + PIN)."""
    salt = bytes.fromhex(driver["salt"])
    pad = hashlib.sha256(salt + b"key" + pin.encode()).digest()
    wrapped = bytes.fromhex(driver["key"])
    return bytes(wrapped[i] ^ pad[i] for i in range(len(pad)))


def unlock(driver, pin):
    """The driver's key if pin is theirs, else None."""
    return unwrap_key(driver, pin) if pin_ok(driver, pin) else None


def signature(key, date, seller, bags, driver):
    """The handover's sig: sign(key, handover_message(date, seller, bags, driver))."""
    return sign(key, handover_message(date, seller, bags, driver))


def _escape(value):
    # Backslash first, then the two separators: no field can forge a boundary.
    return value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")


def handover_message(date, seller, bags, driver):
    """receipts.handover_message: version|date|seller id|seller name|n|bags,sorted|driver id|
    driver name, for seller = (id, name) and driver = its config entry ("id", "name")."""
    ordered = sorted(bags)
    parts = (
        _MESSAGE_VERSION,
        date,
        _escape(seller[0]),
        _escape(seller[1]),
        str(len(ordered)),
        ",".join([_escape(b) for b in ordered]),
        _escape(driver["id"]),
        _escape(driver["name"]),
    )
    return "|".join(parts).encode()


def sign(key, message):
    """Hex HMAC-SHA256 of message under key (RFC 2104: two sha256 passes)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(message)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return _hex(outer.digest())
