# The gateway's side of the wire format (protocol v1, docs/protocol.md): the record kinds and
# the validation of events messages and topics. One definition with wire.py, kept apart so the
# handheld, which only builds messages, never loads it; tests/sync/test_wire_agreement.py runs
# it in MicroPython too, so both interpreters judge every sample alike.
from .wire import (
    ACK,
    CONFIG,
    EVENTS,
    EVENTS_CLOSE,
    EVENTS_OPEN,
    MAX_SEQ,
    MAX_TEXT,
    ROOT,
    STATUS,
    VERSION,
    text_ok,
)

KINDS = (EVENTS, ACK, CONFIG, STATUS)  # the topics' last level
# A record's t: the handheld's ticks() wrap at 2^30 ms (firmware/app/clock.py), as
# MicroPython's ticks_ms does on the ESP32.
TICKS_PERIOD = 2**30

MAX_DEVICE_ID = 32
MAX_INT = 2**31 - 1  # any integer field: fits a 32-bit column on every database
MAX_WALL = 2**32 - 1  # w: seconds since 1970, unsigned 32 bits (year 2106)

# Record kinds and their own fields (name, type). Every record also carries the header fields.
HEADER = (("s", int), ("b", int), ("t", int), ("w", int), ("q", int), ("k", str))
RECORDS = {
    # Bagging at the seller's warehouse.
    "bag_open": (("bag", str),),
    "parcel": (("bag", str), ("trk", str)),
    "parcel_remove": (("bag", str), ("trk", str)),
    "weigh": (("bag", str), ("g", int)),
    "bag_close": (("bag", str), ("n", int), ("g", int), ("dims", list)),
    # Courier pickup at the seller's door. A pickup record's time is the bag's legal pickup time.
    "signin": (("drv", str),),
    "pickup": (("bag", str), ("drv", str)),
    "pickup_refuse": (("bag", str), ("drv", str), ("why", str)),  # why: REFUSE_REASONS
    # hid: the device's handover id; date: pickup date YYYY-MM-DD in the seller's zone;
    # bags: the bag numbers handed over; sig: hex HMAC-SHA256 by the driver's key over
    # the canonical handover message (gateway/domain/receipts.py: handover_message).
    "handover": (
        ("hid", str),
        ("drv", str),
        ("seller", str),
        ("date", str),
        ("bags", list),
        ("sig", str),
    ),
    # Hub arrival: weight at the hub; ok is the device's verdict against the bagging weight.
    "arrive": (("bag", str), ("g", int), ("ok", int)),
}


def parse_topic(name):
    """Return (device_id, kind) of a bagscan topic, or None."""
    if not name.startswith(ROOT):
        return None
    rest = name[len(ROOT) :].split("/")
    if len(rest) != 2 or rest[1] not in KINDS or not device_id_ok(rest[0]):
        return None
    return rest[0], rest[1]


def device_id_ok(device_id):
    if not isinstance(device_id, str) or not 0 < len(device_id) <= MAX_DEVICE_ID:
        return False
    for ch in device_id:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_") or ord(ch) > 127:
            return False
    return True


def _field_error(rec, name, kind):
    if name not in rec:
        return "missing " + name
    value = rec[name]
    # bool is an int in Python; a record never carries booleans where numbers are due
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        return name + " must be an integer"
    if kind is int and name != "w" and not -MAX_INT <= value <= MAX_INT:
        return name + " out of range"
    if kind is str and not text_ok(value):
        return name + " must be printable text of 1.." + str(MAX_TEXT) + " characters"
    if kind is list and not isinstance(value, list):
        return name + " must be a list"
    return None


def record_error(rec):
    """Why a decoded record is invalid, or None."""
    if not isinstance(rec, dict):
        return "record must be an object"
    for name, kind in HEADER:
        err = _field_error(rec, name, kind)
        if err:
            return err
    if not 0 < rec["s"] <= MAX_SEQ:
        return "s out of range"
    if rec["b"] < 0 or not 0 <= rec["w"] <= MAX_WALL or rec["q"] not in (0, 1):
        return "b, w or q out of range"
    if not 0 <= rec["t"] < TICKS_PERIOD:
        return "t out of range"
    fields = RECORDS.get(rec["k"])
    if fields is None:
        return "unknown kind " + rec["k"]
    for name, kind in fields:
        err = _field_error(rec, name, kind)
        if err:
            return err
    if len(rec) != len(HEADER) + len(fields):
        return "unexpected fields"
    return None


def events_error(msg):
    """Why a decoded events message is invalid, or None. Records must be in sequence order."""
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return "not a v1 message"
    recs = msg.get("r")
    if not isinstance(recs, list) or not recs:
        return "r must be a non-empty list"
    last = 0
    for rec in recs:
        err = record_error(rec)
        if err:
            return err
        if rec["s"] <= last:
            return "records out of order"
        last = rec["s"]
    return None


def events_payload(raw_records):
    """One events message from already-encoded records, as a device sends it (simulated
    devices: bench/sync_device.py)."""
    return EVENTS_OPEN + b",".join(raw_records) + EVENTS_CLOSE


def ack_payload(seq):
    """The gateway's acknowledgement of every record up to seq."""
    return b'{"v":1,"s":' + str(seq).encode() + b"}"
