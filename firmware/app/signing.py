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


# Few functions: this module loads while pickup's code is in the heap (the PIN check), and
# each function costs its objects on top of its bytecode; pin_ok, unwrap_key, _hex and
# handover_message would also be names interned for good (docs/firmware.md).


def unlock(driver, pin):
    """The driver's 32-byte key if pin is theirs, else None.

    driver["check"] is hex(sha256(salt + PIN))[:16] (gateway/services/couriers.py pin_check);
    the key is config "key" XOR sha256(salt + b"key" + PIN).
    """
    salt = bytes.fromhex(driver["salt"])
    pin = pin.encode()
    check = binascii.hexlify(hashlib.sha256(salt + pin).digest())[:16]
    if check.decode() != driver["check"]:
        return None
    pad = hashlib.sha256(salt + b"key" + pin).digest()
    wrapped = bytes.fromhex(driver["key"])
    return bytes(wrapped[i] ^ pad[i] for i in range(len(pad)))


def signature(key, date, seller, bags, driver):
    """(the handover's sig, its receipt id): sig is sign(key, message), where the message is
    receipts.handover_message: version|date|seller id|seller name|n|bags,sorted|driver
    id|driver name, for seller = (id, name) and driver = its config entry ("id", "name"); the
    receipt id is the first 16 hex of sha256 over the message (receipts.Receipt.receipt_id),
    which the door screen's QR code names (app/door_receipt.py)."""
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
    message = "|".join(parts).encode()
    return sign(key, message), binascii.hexlify(hashlib.sha256(message).digest())[:16].decode()


def _escape(value):
    # Backslash first, then the two separators: no field can forge a boundary.
    return value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")


def sign(key, message):
    """Hex HMAC-SHA256 of message under key (RFC 2104: two sha256 passes)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(message)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return binascii.hexlify(outer.digest()).decode()
