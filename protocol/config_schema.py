# The config message's schema (protocol v1, docs/protocol.md "config"): every field, the layout
# of its parcel and bag entries, and the builders the gateway uses (gateway/services/
# device_config.py). The handheld never loads this module: it takes the fields it keeps from
# wire.CONFIG_SETTINGS and reads the entries in firmware/app/config.py and parcels.py;
# tests/sync/test_config_agreement.py feeds a message built here to that code.
# The base parcel index and the pages that carry it (docs/protocol.md, "Index pages") are
# built here too; firmware/app/parcels.py reads it, tests/gateway/test_device_config_index.py
# proves both sides agree.
import base64
import hashlib
import json
import struct
import zlib
from collections import Counter

from . import receipt
from .rules import FM49
from .wire import CONFIG_SETTINGS, MAX_MESSAGE, VERSION

HEADER = ("v", "time")  # the protocol version, and the gateway's clock (epoch seconds)
INDEXES = ("parcels", "bags")  # written to the handheld's flash, an entry at a time
SETTINGS = tuple(CONFIG_SETTINGS.split())
# "name_glyphs": the base64 of a font file (gateway/domain/handheld_glyphs.py) with the glyphs
# of the names the handheld shows; written to flash, not kept. Field names of more than 10
# characters: the handheld does not intern them (docs/firmware.md, "Few interned names").
GLYPHS = "name_glyphs"
FIELDS = HEADER + SETTINGS + INDEXES + (GLYPHS,)
# "s", the config's version, is left out only by a config the handheld is provisioned with.
# The handheld has defaults for these: Chinese screens, no door receipt code, no name glyphs.
OPTIONAL = ("store_names", "baggable_hubs", "s", "screen_lang", "receipt_url", GLYPHS)
# "screen_lang": the languages of the handheld's screens (firmware/drivers/zh_text.py), the default
# first: the manual's users read Chinese (issue 18).
LANGUAGES = ("zh", "en")
# A delta (docs/protocol.md, "Config versions"): "s" and "b", the version it applies to, and
# only what changed: settings replaced whole, entries of "parcels" and "bags" set one by one;
# a bag's entry null removes it (BAG_GONE).
DELTA_HEADER = ("v", "time", "s", "b")

# "parcels": {"<tracking number>": [status, hub, seller id, 1 if big-item sea freight else 0]}
# (the facts protocol/rules.py refusal reads, in this order).
PARCEL_ENTRY = ("status", "hub", "seller", "big")
STATUSES = ("pending", "rts", "cancelled", "received")
# Only in a delta's parcel entry: the parcel is in a bag of another handheld of the account
# (protocol/rules.py refuses it IN_OTHER_BAG); never a status of the gateway's parcels.
BAGGED = "bagged"
HUBS = ("SZ", "YW", FM49, "HK", "KR")
# "bags": {"<bag number>": <its weight at bagging in grams>} for the hub's arrival check, and on
# a seller's handheld the account's bags awaiting pickup (its pickup list, app/pickup.py).
# In a delta, BAG_GONE: the bag was picked up, off the sellers' lists (a full config lists only
# the bags still awaiting pickup).
BAG_GONE = None
# "drivers": [{...}], the couriers who may sign in (gateway/services/couriers.py config_entry).
DRIVER_ENTRY = ("id", "name", "badge", "salt", "check", "key")
UNKNOWN_PARCEL = ("accept", "refuse")  # what the handheld does with a parcel not in "parcels"


def parcel_entry(status, hub, seller_id, sea_big_item):
    """A parcel's entry of "parcels"."""
    return [status, hub, seller_id, 1 if sea_big_item else 0]


def bag_entry(grams):
    """A bag's entry of "bags"."""
    return int(grams)


def _text(value):
    return isinstance(value, str) and value != ""


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry_error(name, key, value, delta=False):
    if not _text(key):
        return name + " keys must be text"
    if name == "bags":
        if _count(value) or delta and value is BAG_GONE:
            return None
        return "bags: " + key + " must be whole grams"
    if not isinstance(value, list) or len(value) != len(PARCEL_ENTRY):
        return "parcels: " + key + " must be [" + ", ".join(PARCEL_ENTRY) + "]"
    status, hub, seller, big = value
    if (
        status not in STATUSES + (BAGGED,)
        or hub not in HUBS
        or not _text(seller)
        or big not in (0, 1)
    ):
        return "parcels: " + key + " has an unknown status, hub, seller or big flag"
    return None


def config_error(msg, delta=False):
    """Why a decoded config message does not follow the schema, or None; delta: the fields
    of a delta, whose bag entries may be BAG_GONE."""
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return "not a v1 message"
    for name in FIELDS:
        if name not in msg and name not in OPTIONAL:
            return "missing " + name
    for name in msg:
        if name not in FIELDS:
            return "unexpected field " + name
    if not _count(msg["time"]):
        return "time must be epoch seconds"
    if "s" in msg and not _count(msg["s"]):
        return "s must be a version number"
    lo_hi = msg["bag_range"]
    if not isinstance(lo_hi, list) or len(lo_hi) != 2 or not all(_count(n) for n in lo_hi):
        return "bag_range must be [lo, hi]"
    for s in msg["stores"] if isinstance(msg["stores"], list) else [None]:
        if not _text(s) and not (isinstance(s, list) and s and _text(s[0])):
            return "stores must list seller ids or [id, name]"
    names = msg.get("store_names", {})
    if not isinstance(names, dict) or not all(_text(n) for n in names.values()):
        return "store_names must map seller ids to names"
    hubs = msg.get("baggable_hubs", [])
    if not isinstance(hubs, list) or not all(h in HUBS for h in hubs):
        return "baggable_hubs must list hubs of " + ", ".join(HUBS)
    if msg.get("screen_lang", LANGUAGES[0]) not in LANGUAGES:
        return "screen_lang must be one of " + ", ".join(LANGUAGES)
    url = msg.get("receipt_url", "")
    if not isinstance(url, str) or receipt.door_text(url or "x", "0", "0") is None:
        return "receipt_url must be a URL of at most %d characters" % receipt.MAX_BASE_URL
    if not isinstance(msg.get(GLYPHS, ""), str):
        return "glyphs must be the base64 of a font file"
    if msg["unknown_parcel"] not in UNKNOWN_PARCEL:
        return "unknown_parcel must be one of " + ", ".join(UNKNOWN_PARCEL)
    for d in msg["drivers"] if isinstance(msg["drivers"], list) else [None]:
        if not isinstance(d, dict) or set(d) != set(DRIVER_ENTRY):
            return "drivers must be objects with " + ", ".join(DRIVER_ENTRY)
    if not _count(msg["arrival_tolerance_g"]):
        return "arrival_tolerance_g must be whole grams"
    pct = msg["arrival_tolerance_pct"]
    if isinstance(pct, bool) or not isinstance(pct, (int, float)) or pct < 0:
        return "arrival_tolerance_pct must be a percentage"
    for name in INDEXES:
        if not isinstance(msg[name], dict):
            return name + " must be an object"
        for key, value in msg[name].items():
            err = _entry_error(name, key, value, delta)
            if err:
                return err
    return None


def delta_error(msg):
    """Why a decoded delta does not follow the schema, or None: the fields it carries are
    checked as a full config's are."""
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return "not a v1 message"
    for name in DELTA_HEADER:
        if not _count(msg.get(name)):
            return "a delta needs " + name
    if msg["b"] >= msg["s"]:
        return "b must be below s"
    for name in msg:
        if name not in FIELDS + DELTA_HEADER:
            return "unexpected field " + name
    full = {n: msg.get(n, _EMPTY.get(n)) for n in FIELDS if n in msg or n not in OPTIONAL}
    full["v"] = VERSION
    return config_error(full, delta=True)


# What config_error is given for a field a delta leaves out.
_EMPTY = {
    "time": 0,
    "bag_range": [0, 0],
    "stores": [],
    "unknown_parcel": UNKNOWN_PARCEL[0],
    "drivers": [],
    "arrival_tolerance_g": 0,
    "arrival_tolerance_pct": 0,
    "parcels": {},
    "bags": {},
}


# --- the base parcel index (docs/protocol.md, "Index pages"; docs/firmware.md, "Parcel index")
# One file the handheld keeps as it comes, little-endian:
#   header: INDEX_MAGIC and the fingerprint's byte count F; the record count N, the bucket
#     count B, the entry count M (u32 each);
#   B + 1 u32: the number of the first record of each bucket (the last is N);
#   N records of F + 1 bytes (F + 2 when M > 256): a tracking number's fingerprint, then the
#     number of its entry;
#   M + 1 u32: where each entry's text starts after them (the last: where the texts end),
#     then the texts, "status<TAB>hub<TAB>seller<TAB>0|1", as firmware/app/config.py writes an
#     entry in its bucket files.
# A tracking number's SHA-256 gives its bucket (the first 4 bytes, modulo B) and its
# fingerprint (the next F): a lookup reads one bucket of about INDEX_BUCKET_MEAN records.
INDEX_MAGIC = b"BPI"
INDEX_HEADER = struct.Struct("<3sBIII")
INDEX_BUCKET_MEAN = 16  # records per bucket: a lookup reads ~64 bytes
# The flash beside the journal's 1.5 MiB holds 4-byte records of up to 40,000 parcels, 3-byte
# ones of 50,000 (docs/firmware.md, "Parcel index"). A parcel the index lacks matches a
# record of its bucket by chance with odds INDEX_BUCKET_MEAN / 2^(8 F): 1 in a million with 3
# bytes, 1 in 4,096 with 2; the gateway checks every record when it arrives.
WIDE_FINGERPRINT_MAX = 40_000


def fingerprint_bytes(count: int) -> int:
    """F for an index of count parcels: 3 while they fit the flash so, else 2."""
    return 3 if count <= WIDE_FINGERPRINT_MAX else 2


# Index bytes per page: their base64 (16,000 characters) and the page's header stay within
# wire.MAX_MESSAGE. A multiple of 3, so each page's base64 stands alone.
PAGE_BYTES = 12_000
PAGE_FIELDS = ("v", "s", "index", "data")  # "data" last: the handheld finds it in the first bytes


def index_key(tracking_no: str, size: int = 3) -> tuple[int, bytes]:
    """(the number whose remainder by B is the tracking number's bucket, its fingerprint of
    size bytes)."""
    digest = hashlib.sha256(tracking_no.encode()).digest()
    return int.from_bytes(digest[:4], "little"), digest[4 : 4 + size]


def entry_text(entry: list) -> str:
    """A parcel entry as the index (and the handheld's bucket files) store it."""
    status, hub, seller, big = entry
    return f"{status}\t{hub}\t{seller}\t{1 if big else 0}"


def index_file(parcels: dict[str, list]) -> bytes:
    """The base index of parcels ({tracking number: parcel entry}). Two tracking numbers with
    the same bucket and fingerprint are both left out (at 50,000 parcels about 10 of them):
    either would answer with the other's facts, while one left out is asked for online, as
    any parcel the index lacks."""
    buckets = len(parcels) // INDEX_BUCKET_MEAN + 1
    size = fingerprint_bytes(len(parcels))
    rows = []
    for tracking_no, entry in parcels.items():
        key, fp = index_key(tracking_no, size)
        rows.append((key % buckets, fp, entry_text(entry)))
    clashes = Counter((b, fp) for b, fp, _ in rows)
    rows = sorted(r for r in rows if clashes[r[:2]] == 1)
    texts = sorted({text for _, _, text in rows})
    if len(texts) > 0xFFFF:
        raise ValueError(f"{len(texts)} distinct parcel entries: an index numbers 65,535")
    number = {text: i for i, text in enumerate(texts)}
    wide = len(texts) > 256
    starts = [0] * (buckets + 1)
    for b, _, _ in rows:
        starts[b + 1] += 1
    for b in range(buckets):
        starts[b + 1] += starts[b]
    out = bytearray(INDEX_HEADER.pack(INDEX_MAGIC, size, len(rows), buckets, len(texts)))
    out += struct.pack(f"<{buckets + 1}I", *starts)
    for _, fp, text in rows:
        out += fp + number[text].to_bytes(2 if wide else 1, "little")
    encoded = [t.encode() for t in texts]
    at = 0
    for t in encoded:
        out += struct.pack("<I", at)
        at += len(t)
    out += struct.pack("<I", at)
    for t in encoded:
        out += t
    return bytes(out)


def index_pages(version: int, index: bytes) -> list[bytes]:
    """The messages that carry index to a handheld, for its config of this version: each
    {"v", "s", "index": [page, pages, CRC-32 of the index up to the end of this page],
    "data": base64 of its PAGE_BYTES}."""
    count = max(1, -(-len(index) // PAGE_BYTES))
    pages = []
    crc = 0
    for k in range(count):
        chunk = index[k * PAGE_BYTES : (k + 1) * PAGE_BYTES]
        crc = zlib.crc32(chunk, crc)
        msg = {
            "v": VERSION,
            "s": version,
            "index": [k + 1, count, crc],
            "data": base64.b64encode(chunk).decode(),
        }
        data = json.dumps(msg, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE:  # only a bug gets here
            raise RuntimeError(f"index page of {len(data)} bytes over {MAX_MESSAGE}")
        pages.append(data)
    return pages


def page_error(msg) -> str | None:
    """Why a decoded index page does not follow the schema, or None."""
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return "not a v1 message"
    if list(msg) != list(PAGE_FIELDS):
        return "a page has the fields " + ", ".join(PAGE_FIELDS) + ", in this order"
    if not _count(msg["s"]):
        return "s must be a version number"
    index = msg["index"]
    if (
        not isinstance(index, list)
        or len(index) != 3
        or not all(_count(n) for n in index)
        or not 1 <= index[0] <= index[1]
    ):
        return "index must be [page, pages, crc]"
    if not isinstance(msg["data"], str):
        return "data must be base64 text"
    return None
