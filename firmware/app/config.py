# Taking the gateway's config message (docs/firmware.md, "Config"): the settings, and the
# parcel and bag indexes rewritten on flash. Loaded only while a message is applied and
# dropped again, so this code does not stay in the heap. Its names are interned for good
# once loaded (docs/firmware.md, "Few interned names"), hence few functions and no class.
import binascii
import json
import os

from micropython import const

from app import clock, wire
from app.parcels import BUCKETS, fingerprint
from app.store import read_or, remove_if_exists, write_atomic

_DIGEST = const("digest")  # count and checksum of the entries an index holds
# Config keys kept in settings (config.json); "parcels" and "bags" go to flash indexes.
_SETTINGS = const(
    (
        "bag_range",
        "stores",
        "store_names",
        "unknown_parcel",
        "drivers",
        "arrival_tolerance_g",
        "arrival_tolerance_pct",
        "baggable_hubs",
    )
)
_CHUNK = const(128)  # bytes of a spooled message read at a time


def apply(hh, msg):
    """Take a config: a provisioning config.json's settings (a dict), which may carry parcels
    or bags, or a message from the gateway (app/sync.py): bytes, or the file the MQTT client
    spooled a large one to. A file is read a piece at a time and its indexes an entry at a
    time: a full 16 KB message decoded whole takes several times its size. If the settings
    changed, config.json is rewritten, so the device works offline after a restart."""
    try:
        spooled = None
        if not isinstance(msg, dict):  # from the gateway: checked, and its time taken
            if isinstance(msg, bytes):
                msg = json.loads(msg)
            else:
                spooled = msg
                msg = dict(_members(spooled, None))
            if not isinstance(msg, dict) or msg.get("v") != wire.VERSION:
                return
            server_time = msg.get("time")
            if isinstance(server_time, int) and server_time > 0:
                clock.sync(server_time)
        for name in ("parcels", "bags"):
            items = msg.get(name)
            if items is ...:  # an object whose entries stay in the spooled file
                _replace(hh, name, lambda name=name: _members(spooled, name))
            elif isinstance(items, dict):
                _replace(hh, name, items.items)
    except ValueError as e:  # not JSON, or cut short: the last good config stays
        print("config: ignored a message:", e)
        return
    changed = False
    if msg is hh.settings:  # provisioning: the indexes are on flash now, not in settings
        msg.pop("parcels", None)
        msg.pop("bags", None)
        changed = True
    for key in _SETTINGS:
        if key in msg and msg[key] != hh.settings.get(key):
            hh.settings[key] = msg[key]
            changed = True
    if changed:
        write_atomic(hh.storage + "/config.json", json.dumps(hh.settings).encode())


def _line(name, value):
    """An index entry's value as its bucket line has it; None if it is malformed."""
    if name == "bags":
        return str(value)
    if isinstance(value, list) and len(value) == 4:  # ["status", "hub", "seller", big]
        return "%s\t%s\t%s\t%d" % (value[0], value[1], value[2], 1 if value[3] else 0)
    return None


def _replace(hh, name, items):
    """Make the FlashIndex of index name hold the (key, value) pairs items() yields, unless
    it holds them already."""
    directory = hh.parcels.dir if name == "parcels" else hh.bags.dir
    count = digest = 0
    for key, value in items():
        text = _line(name, value)
        if text is not None:
            count += 1
            digest = (digest + binascii.crc32(text.encode(), fingerprint(key))) & 0xFFFFFFFF
    mark = b"%d %d\n" % (count, digest)
    if read_or(directory + "/" + _DIGEST) == mark:
        return
    # The mark goes first and last: a power cut in between leaves no mark, so the next
    # config rewrites everything; each bucket is old or new, never torn (store.py).
    remove_if_exists(directory + "/" + _DIGEST)
    for b in range(BUCKETS):
        open(directory + "/%d.tmp" % b, "wb").close()
    # Each entry is appended to its bucket's file: one file open at a time, and the entries
    # read once more, not once per bucket (a spooled message is re-read from flash).
    for key, value in items():
        text = _line(name, value)
        if text is None or "\t" in key or "\n" in key:
            continue
        with open(directory + "/%d.tmp" % (fingerprint(key) % BUCKETS), "r+b") as f:
            f.seek(0, 2)  # appended: "ab" would be one more interned name
            f.write(key.encode())
            f.write(b"\t")
            f.write(text.encode())
            f.write(b"\n")
    for b in range(BUCKETS):
        os.rename(directory + "/%d.tmp" % b, directory + "/%d" % b)
    write_atomic(directory + "/" + _DIGEST, mark)


def _members(f, name):
    """(key, value) of each member of the JSON object in file f, read _CHUNK bytes at a time,
    one member decoded at a time. name None: the top object's members, the value of a
    "parcels" or "bags" object given as ... (its entries stay in the file); else the members
    of the top member name's object."""
    f.seek(0)
    buf = bytearray(_CHUNK)  # one buffer: a block per chunk may not be found in a used heap
    text = bytearray()  # the member being read: "key":value (only "key": for a skipped one)
    top = bytearray()  # name given: the key of the top member being read
    want = None if name is None else b'"' + name.encode() + b'"'
    level = 1 if name is None else 2  # depth of the members given
    keep = name is None  # the members being read at that depth are given
    depth = 0
    colon = -1  # where the ":" of the member being read is in text
    skip = quoted = escaped = False
    while True:
        n = f.readinto(buf)
        if not n:
            raise ValueError("the message is cut short")
        for i in range(n):
            c = buf[i]
            if quoted:
                if escaped:
                    escaped = False
                elif c == 92:  # \
                    escaped = True
                elif c == 34:  # "
                    quoted = False
            elif c <= 32:  # white space between tokens
                continue
            elif c == 34:
                quoted = True
            elif c == 123 or c == 91:  # { [
                depth += 1
                if depth <= level:
                    continue  # the top object, or (name given) a top member's value, opens
            elif c == 125 or c == 93 or c == 44 and depth <= level:  # } ] ,
                if c != 44:
                    depth -= 1
                if depth < level or c == 44 and depth == level:  # a member ends
                    if keep and text:
                        # MicroPython's json.loads takes any buffer; the stubs say str or bytes.
                        key = json.loads(text[:colon])  # pyright: ignore[reportArgumentType]
                        value = ... if skip else json.loads(text[colon + 1 :])  # pyright: ignore[reportArgumentType]
                        yield key, value
                    if depth == 0 or depth < level and keep:
                        return  # the object read is closed
                    text = bytearray()
                    top = bytearray()
                    colon = -1
                    skip = False
                    continue
            elif c == 58 and depth == 1 and want is not None:  # : after a top key
                keep = top == want
                continue
            elif c == 58 and depth == level and colon < 0:  # : after a member's key
                colon = len(text)
                skip = name is None and (text == b'"parcels"' or text == b'"bags"')
            if depth == 1 and want is not None:
                top.append(c)
            elif depth >= level and keep and not skip:
                text.append(c)
