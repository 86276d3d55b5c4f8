# The base parcel index as the gateway sends it, in pages (docs/protocol.md, "Index pages";
# docs/firmware.md, "Parcel index"; the layout: protocol/config_schema.py): written to flash as
# the pages come and put in place whole when the last one arrived; and the count of parcels on
# flash. Loaded by app/config.py for one call (lazy.call): only on a handheld sent an index.
import binascii
import json
import os
import struct

from micropython import const

from app.flashfile import read_or, remove_if_exists, write_atomic

# Names over 10 characters, which the compiler does not intern; _BASE is app/parcels.py's.
_BASE = const("/base.index")
_STAGED = const("/staged.index")  # the index being received
_PAGES = const("/staged.pages")  # "<version> <pages taken> <CRC-32> <bytes>" of the staged one
_CHUNK = const(128)  # base64 characters read at a time: 96 bytes of index
_HEAD = const(128)  # bytes that hold the page's other fields: "data" comes last
_DIGEST = const("/digest")  # the bucket files' count and checksum (app/config.py)


def _data(f):
    """The index bytes of the spooled page f, a piece at a time; ValueError if it is cut
    short (app/config.py then ignores the message)."""
    f.seek(0)
    start = f.read(_HEAD).find(b'"data":"')
    if start < 0:
        raise ValueError("no index data")
    f.seek(start + 8)
    buf = bytearray(_CHUNK)
    while True:
        n = f.readinto(buf)
        if not n:
            raise ValueError("the page is cut short")
        end = buf.find(b'"', 0, n)
        # MicroPython's a2b_base64 takes any buffer; the stubs say str or bytes.
        yield binascii.a2b_base64(memoryview(buf)[: n if end < 0 else end])  # pyright: ignore[reportArgumentType]
        if end >= 0:
            return


def count(directory):
    """The parcels on flash: the bucket files' and the base index's (a parcel changed since
    the base came counts in both)."""
    n = int((read_or(directory + _DIGEST) or b"0").split()[0])
    try:
        with open(directory + _BASE, "rb") as f:
            head = f.read(8)
        if head[:3] == b"BPI":
            n += struct.unpack_from("<I", head, 4)[0]
    except OSError:
        pass  # no base index
    return n


def update(hh, msg, f):
    """Take page msg["index"] = [k, pages, crc] of the base index built at config version
    msg["s"]; f is the spooled message (or its bytes). True once the new index is in place
    (the status then reports its size). A page out of turn is dropped: page 1 always starts
    over, so a gateway that sends the index again after a lost page restarts it cleanly."""
    k, pages, crc = msg["index"]
    directory = hh.parcels.dir
    if k == 1:
        # A base built before the config the handheld has could be older than the bucket
        # files' entries (app/config.py drops the base at each full config).
        if msg["s"] < hh.settings.get("s", 0):
            return None
        # One base on flash (50,000 parcels take 200 KB): the old one goes now. Until the
        # last page, lookups have the bucket files, then the gateway (parcel requests).
        remove_if_exists(directory + _PAGES)
        remove_if_exists(directory + _BASE)
        open(directory + _STAGED, "wb").close()
        at = total = 0
    else:
        meta = read_or(directory + _PAGES)
        if meta is None:
            return None
        version, taken, total, at = (int(x) for x in meta.split())
        if version != msg["s"] or taken != k - 1:
            return None
    try:
        out = open(directory + _STAGED, "r+b")
    except OSError:  # put in place already: a power cut came before its mark went
        remove_if_exists(directory + _PAGES)
        return None
    try:
        # Written from where the last page taken ended: a page cut short by a power cut
        # comes again (the MQTT client acknowledges it after this returns) and overwrites.
        out.seek(at)
        # A page under 256 bytes came as bytes and app/config.py decoded it whole.
        pieces = (binascii.a2b_base64(msg["data"]),) if isinstance(f, bytes) else _data(f)
        for data in pieces:
            total = binascii.crc32(data, total)
            out.write(data)
            at += len(data)
        out.flush()
    finally:
        out.close()
    if total != crc:  # not what the gateway sent: dropped, and sent again (page 1 restarts)
        remove_if_exists(directory + _PAGES)
        return None
    if k < pages:
        write_atomic(directory + _PAGES, b"%d %d %d %d" % (msg["s"], k, total, at))
        return None
    # The switch: one rename, so a power cut leaves no base or the whole new one.
    os.rename(directory + _STAGED, directory + _BASE)
    remove_if_exists(directory + _PAGES)
    hh.settings["n"] = count(directory)
    write_atomic(hh.storage + "/config.json", json.dumps(hh.settings).encode())
    return True
