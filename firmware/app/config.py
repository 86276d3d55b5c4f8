# Taking the gateway's config message (docs/firmware.md, "Config"; its schema: protocol/
# config_schema.py): the settings, and the parcel and bag indexes rewritten on flash. Loaded
# only while a message is applied and dropped again, so this code does not stay in the heap.
# Its names are interned for good once loaded (docs/firmware.md, "Few interned names"), hence
# few functions and no class.
import binascii
import json
import os

from micropython import const

import lazy
from app import clock
from protocol import wire
from app.parcels import BUCKETS, fingerprint
from app.flashfile import read_or, remove_if_exists, write_atomic
from drivers.ssd1306 import NAME_GLYPHS

_DIGEST = const("digest")  # count and checksum of the entries an index holds
_CHUNK = const(128)  # bytes of a spooled message read at a time
_TMP = const(".tmp")  # flashfile.py's
# The base parcel index, and the mark of the one being received (app/index_pages.py): a
# full config drops both, and the gateway sends the base again.
_BASE = const("/base.index")
_PAGES = const("/staged.pages")
_INDEX_PAGES = const("app.index_pages")
# The config's names' glyphs (a long string, not an interned name), kept for the Chinese text.
_GLYPHS_FIELD = const("name_glyphs")


def apply(hh, msg, retained=False):
    """Take a config: a provisioning config.json's settings (a dict), which may carry parcels
    or bags, or a message from the gateway (app/sync.py): bytes, or the file the MQTT client
    spooled a large one to. A retained message's time is not taken: the broker may have kept
    it for hours, and the pickup scan's time is the legal pickup time; the gateway sends a
    time of its own ({"v", "time"}) to a handheld whose status says its clock is off.
    A file is read a piece at a time and its indexes an entry at a
    time: a full 16 KB message decoded whole takes several times its size. If the settings
    changed, config.json is rewritten, so the device works offline after a restart."""
    s = hh.settings
    try:
        spooled = raw = None
        if not isinstance(msg, dict):  # from the gateway: checked, and its time taken
            if isinstance(msg, bytes):
                raw = msg
                msg = json.loads(msg)
            else:
                spooled = msg
                msg = dict(_members(spooled, None))
            if not isinstance(msg, dict) or msg.get("v") != wire.VERSION:
                return
            if "index" in msg:  # a page of the base parcel index, which keeps no settings
                return lazy.call(_INDEX_PAGES, "update", hh, msg, spooled or raw)
            server_time = msg.get("time")
            if isinstance(server_time, int) and server_time > 0 and not retained:
                clock.sync(server_time)
                if len(msg) == 2:  # the time alone: the status tells the gateway it took it
                    return True
            # The config's version "s" (docs/protocol.md, "Config versions"): a delta ("b",
            # the version it applies to) is taken only on that version; a duplicate or an
            # older full config is dropped. Either way the status then reports the version.
            n = msg.get("s", 0)
            if n <= s.get("s", 0) and n:
                # The parcels on flash may have changed since the status last said: a power
                # cut after an index went in place and before config.json was written.
                s["n"] = count(hh)
                return True
            if "b" in msg and msg["b"] != s.get("s", 0):
                return True  # a gap: the gateway resends from the version the status reports
        for name in ("parcels", "bags"):
            items = msg.get(name)
            if items is ...:  # an object whose entries stay in the spooled file
                items = lambda name=name: _members(spooled, name)  # noqa: E731
            elif isinstance(items, dict):
                items = items.items
            else:
                continue
            if "b" in msg:  # a delta sets its entries, a full config replaces the index
                add(hh, name, items)
            else:
                _replace(hh, name, items)
    except ValueError as e:  # not JSON, or cut short: the last good config stays
        print("config: ignored a message:", e)
        return
    changed = False
    if "s" in msg and msg is not s:  # when the last change came, and the index's size
        s["time"] = clock.wall()
        s["n"] = count(hh)
        changed = True
    if msg is hh.settings:  # provisioning: the indexes are on flash now, not in settings
        msg.pop("parcels", None)
        msg.pop("bags", None)
        changed = True
    for key in wire.CONFIG_SETTINGS.split():
        if key in msg and msg[key] != hh.settings.get(key):
            hh.settings[key] = msg[key]
            changed = True
    # The glyphs of the names the screens show (issue 18): a font file, not a setting.
    glyphs = msg.pop(_GLYPHS_FIELD, None)
    if isinstance(glyphs, str):
        write_atomic(hh.storage + NAME_GLYPHS, binascii.a2b_base64(glyphs))
    if changed:
        write_atomic(hh.storage + "/config.json", json.dumps(hh.settings).encode())
    return changed


def count(hh):
    """The parcels on flash, which the status reports ("n"). The base index's module is
    loaded only on a handheld that has one ("count": a name the runtime has interned)."""
    try:
        os.stat(hh.parcels.dir + _BASE)
    except OSError:  # no base index: the bucket files' count
        return int((read_or(hh.parcels.dir + "/" + _DIGEST) or b"0").split()[0])
    return lazy.call(_INDEX_PAGES, "count", hh.parcels.dir)


def _line(name, value):
    """An index entry's value as its bucket line has it; None if it is malformed. The entries
    are protocol/config_schema.py's: a bag's weight in grams, and a parcel's [status, hub,
    seller, big], which app/parcels.py parse_parcel reads back for the bag rules."""
    if name == "bags":
        return str(value)
    if isinstance(value, list) and len(value) == 4:
        return "%s\t%s\t%s\t%d" % (value[0], value[1], value[2], 1 if value[3] else 0)
    return None


def _replace(hh, name, items):
    """Make the FlashIndex of index name hold the (key, value) pairs items() yields, unless
    it holds them already."""
    directory = hh.parcels.dir if name == "parcels" else hh.bags.dir
    # The bucket files take the newest entries that fit one message: a base index older than
    # them may be stale for the others, and goes (the bags have none).
    remove_if_exists(directory + _PAGES)
    remove_if_exists(directory + _BASE)
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
    # config rewrites everything; each bucket is old or new, never torn (flashfile.py).
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
    for b in range(BUCKETS, 32):  # left by firmware 0.2, which had 32 bucket files
        remove_if_exists(directory + "/%d" % b)
    write_atomic(directory + "/" + _DIGEST, mark)


def add(hh, name, items):
    """Set the (key, value) pairs items() yields, a delta's entries, in the FlashIndex of
    index name (a value None removes the key), one bucket rewritten (crash-safely, a line at a
    time) per entry; the digest
    follows. The mark
    is removed first: a power cut in between leaves none, so the next full config rewrites
    everything, and the gateway resends the delta, whose version the settings do not show.
    ("add": a name the runtime has interned already, docs/firmware.md.)"""
    directory = hh.parcels.dir if name == "parcels" else hh.bags.dir
    mark = read_or(directory + "/" + _DIGEST)
    remove_if_exists(directory + "/" + _DIGEST)
    count, digest = (int(x) for x in (mark or b"0 0").split())
    for key, value in items():
        # null: the entry goes (a picked-up bag, protocol/config_schema.py BAG_GONE)
        text = "" if value is None else _line(name, value)
        if text is None or "\t" in key or "\n" in key:
            continue
        path = directory + "/%d" % (fingerprint(key) % BUCKETS)
        needle = key.encode() + b"\t"
        # The bucket copied a line at a time without the entry's old line, the new one
        # appended, then renamed in: old or new after a power cut (flashfile.py).
        out = open(path + _TMP, "wb")
        try:
            try:
                f = open(path, "rb")
            except OSError:
                pass  # the bucket's first entry
            else:
                with f:
                    for line in f:
                        if line.startswith(needle):
                            count -= 1
                            digest -= binascii.crc32(line[len(needle) : -1], fingerprint(key))
                        else:
                            out.write(line)
            if text:
                count += 1
                out.write(needle)
                out.write(text.encode())
                out.write(b"\n")
            out.flush()
        finally:
            out.close()
        os.rename(path + _TMP, path)
        if text:
            digest += binascii.crc32(text.encode(), fingerprint(key))
    if mark is not None:  # no mark: the index is unknown until the next full config
        write_atomic(directory + "/" + _DIGEST, b"%d %d\n" % (count, digest & 0xFFFFFFFF))


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
                # An index page's "data" stays in the file too (app/index_pages.py).
                skip = name is None and (
                    text == b'"parcels"' or text == b'"bags"' or text == b'"data"'
                )
            if depth == 1 and want is not None:
                top.append(c)
            elif depth >= level and keep and not skip:
                text.append(c)
