# The wire format between handheld and gateway (protocol v1, docs/protocol.md): one definition,
# run by MicroPython on the device and imported by the gateway as protocol.wire.
# This module is what the handheld loads (topics, payload building, the ack check); the
# validation of records and topics, which only the gateway runs, is in wire_schema.py, so its
# bytecode never takes the device's heap. Validation returns an error string (None when fine).
VERSION = 1
ROOT = "bagscan/v1/dev/"
EVENTS = "events"  # device -> gateway, QoS 1: a batch of journal records
ACK = "ack"  # gateway -> device, QoS 1: cumulative, sent only after the database commit
CONFIG = "config"  # gateway -> device: retained full configs, and deltas (not retained)
STATUS = "status"  # device -> gateway, retained; the last will says offline
# A parcel the handheld's cache lacks, asked for while online (docs/protocol.md, "Parcel
# requests"): the tracking number on REQUEST, QoS 0; the gateway answers on PARCEL, QoS 0,
# {"v": 1, "parcels": {"<tracking number>": <a config parcel entry, or null: unknown>}}.
REQUEST = "request"  # device -> gateway
PARCEL = "parcel"  # gateway -> device

MAX_MESSAGE = 16384  # bytes of one MQTT payload; larger is refused unread
MAX_TEXT = 64  # longest string field in a record, and the longest barcode the scanner passes
MAX_SEQ = 2**31 - 1

# The config message (retained on CONFIG): the fields a handheld keeps in its settings, besides
# the header (v, time) and the two indexes it writes to flash (parcels, bags); "s" is the
# config's version (a delta also has "b", the version it applies to). One string, split
# when a message is applied: a tuple of eight names takes 0.4 KB of the handheld's heap for
# good. The whole schema, entries included, and the gateway's builders are in config_schema.py,
# which the handheld never loads.
CONFIG_SETTINGS = (
    "bag_range stores store_names unknown_parcel drivers"
    " arrival_tolerance_g arrival_tolerance_pct baggable_hubs s screen_lang receipt_url"
)

# The courier's reasons to refuse a bag (manual: 揽收无货, 包装不符, 大包超重超长).
REFUSE_REASONS = ("no_goods", "packaging", "over_limit")


def topic(device_id, kind):
    return ROOT + device_id + "/" + kind


def text_ok(value):
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        return False
    # Bytes, not characters: MicroPython interns every one-character string it makes, and
    # interned names are never freed. A non-ASCII character encodes to bytes >= 0x80.
    for b in value.encode():
        if b < 32 or b == 127:
            return False
    return True


# An events message: EVENTS_OPEN, the encoded records joined by ",", EVENTS_CLOSE (the device
# writes it straight into its MQTT packet buffer: app/sync.py _batch).
EVENTS_OPEN = b'{"v":1,"r":['
EVENTS_CLOSE = b"]}"


def ack_error(msg):
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return "not a v1 message"
    seq = msg.get("s")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        return "s must be a sequence number"
    return None


def bag_number(n):
    """The bag number printed on the label ("揽收扫描条码") for number n of a device's range."""
    return "BS%010d" % n


def bag_serial(bag_no):
    """The range number inside a bag number, or None if it is not one of ours."""
    if len(bag_no) != 12 or not bag_no.startswith("BS") or not bag_no[2:].isdigit():
        return None
    return int(bag_no[2:])
