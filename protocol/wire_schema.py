# The gateway's side of the wire format (protocol v1, docs/protocol.md): the record kinds and
# the validation of events messages and topics. One definition with wire.py, kept apart so the
# handheld, which only builds messages, never loads it; tests/sync/test_wire_agreement.py runs
# it in MicroPython too, so both interpreters judge every sample alike.
import json

from .rules import MAX_PARCELS
from .wire import (
    ACK,
    CONFIG,
    EVENTS,
    EVENTS_CLOSE,
    EVENTS_OPEN,
    MAX_SEQ,
    MAX_TEXT,
    PARCEL,
    REQUEST,
    ROOT,
    STATUS,
    VERSION,
    bag_serial,
    text_ok,
)

KINDS = (EVENTS, ACK, CONFIG, STATUS, REQUEST, PARCEL)  # the topics' last level
# A record's t: the handheld's ticks() wrap at 2^30 ms (firmware/app/clock.py), as
# MicroPython's ticks_ms does on the ESP32.
TICKS_PERIOD = 2**30

MAX_DEVICE_ID = 32
MAX_INT = 2**31 - 1  # any integer field: fits a 32-bit column on every database
# w: seconds since 1970, unsigned 32 bits (year 2106). Any value passes the wire: a handheld
# whose clock is wrong still sends what it journals; the gateway flags a time outside its
# window and does not trust it (gateway/ingest/ledger.py, "Time" in docs/protocol.md).
MAX_WALL = 2**32 - 1
# g: whole grams as the handheld's scale reads them. The scale refuses a load past its
# capacity (firmware/drivers/scale.py capacity_g, tests/sync/test_wire_agreement.py checks
# they agree) and the handheld journals only weights above zero.
MAX_GRAMS = 60000
# dims: three whole sides in cm, as a preset or a DIM: code (firmware/app/bagging.py
# _MAX_SIDE_INPUT: a longer side is a misread). The gateway re-checks the bag limits.
MAX_SIDE_CM = 999
MAX_HANDOVER_BAGS = 100  # firmware/app/pickup.py _MAX_BAGS: one journal frame
# Integer fields of a kind and their range, beyond the header's.
INT_RANGES = {"g": (0, MAX_GRAMS), "n": (0, MAX_PARCELS), "ok": (0, 1)}
# Kinds whose bag the handheld numbers itself (wire.bag_number), so it must be one of ours;
# pickup and arrival carry a scanned label, which the gateway looks up.
NUMBERED = ("bag_open", "parcel", "parcel_remove", "weigh", "bag_close")

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


def _text_error(value):
    """Why a value is not record text, or None: wire.text_ok, the handheld's own rule for
    what it scans, and no lone surrogate (JSON can carry one; it is no character, and
    CPython cannot encode it)."""
    if isinstance(value, str):
        for ch in value:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                value = None
                break
    if not text_ok(value):
        return "printable text of 1.." + str(MAX_TEXT) + " characters"
    return None


def _int_ok(value, low, high):
    # bool is an int in Python; a record never carries booleans where numbers are due
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _field_error(rec, name, kind):
    if name not in rec:
        return "missing " + name
    value = rec[name]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        # floats included: no field takes one, so 1e999, which JSON decodes to infinity,
        # never reaches the gateway's columns
        return name + " must be an integer"
    if kind is int and name != "w" and not -MAX_INT <= value <= MAX_INT:
        return name + " out of range"
    if kind is int and name in INT_RANGES:
        low, high = INT_RANGES[name]
        if not low <= value <= high:
            return name + " out of range " + str(low) + ".." + str(high)
    if kind is str:
        err = _text_error(value)
        if err:
            return name + " must be " + err
    if kind is not list:
        return None
    if not isinstance(value, list):
        return name + " must be a list"
    if name == "dims" and (len(value) != 3 or not all(_int_ok(d, 1, MAX_SIDE_CM) for d in value)):
        return "dims must be three whole sides of 1.." + str(MAX_SIDE_CM) + " cm"
    if name == "bags":
        if not 0 < len(value) <= MAX_HANDOVER_BAGS:
            return "bags must list 1.." + str(MAX_HANDOVER_BAGS) + " bag labels"
        for bag in value:
            err = _text_error(bag)
            if err:
                return "bags must be " + err
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
    # A bag number the handheld made is BS and ten digits: nothing else (a "/" included)
    # may become a bag the API then cannot look up.
    if rec["k"] in NUMBERED and bag_serial(rec["bag"]) is None:
        return "bag must be a bag number BS0000000000"
    return None


def _not_json(constant):
    raise ValueError("not JSON: " + constant)


try:  # CPython: refuse NaN and Infinity, which RFC 8259 does not have
    _decode = json.JSONDecoder(parse_constant=_not_json).decode
except AttributeError:  # MicroPython: its json refuses them itself
    _decode = json.loads


def decode(text):
    """A message's JSON as both interpreters read it: ValueError if it is not JSON."""
    return _decode(text)


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
    devices: devkit/wire_device.py)."""
    return EVENTS_OPEN + b",".join(raw_records) + EVENTS_CLOSE


def ack_payload(seq):
    """The gateway's acknowledgement of every record up to seq."""
    return b'{"v":1,"s":' + str(seq).encode() + b"}"
