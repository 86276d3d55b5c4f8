# The wire format between handheld and gateway (protocol v1, docs/protocol.md): one definition,
# run by MicroPython on the device and imported by the gateway as firmware.app.wire.
# This module is what the handheld loads (topics, payload building, the ack check); the
# validation of records and topics, which only the gateway runs, is in wire_schema.py, so its
# bytecode never takes the device's heap. Validation returns an error string (None when fine).
VERSION = 1
ROOT = "bagscan/v1/dev/"
EVENTS = "events"  # device -> gateway, QoS 1: a batch of journal records
ACK = "ack"  # gateway -> device, QoS 1: cumulative, sent only after the database commit
CONFIG = "config"  # gateway -> device, retained: bag-number range, parcel cache, time
STATUS = "status"  # device -> gateway, retained; the last will says offline

MAX_MESSAGE = 16384  # bytes of one MQTT payload; larger is refused unread
MAX_TEXT = 64  # longest string field in a record (barcodes: rules.MAX_BARCODE_LEN)
MAX_SEQ = 2**31 - 1

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
