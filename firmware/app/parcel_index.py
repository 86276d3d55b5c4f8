# The lookup in the base parcel index (docs/firmware.md, "Parcel index"; its layout:
# protocol/config_schema.py): loaded by app/parcels.py for one lookup at a time (lazy.call),
# so its code never stays in the heap; kept this small because it is loaded at every scan the
# bucket files miss. app/index_pages.py writes the index.
import hashlib
import struct

from micropython import const

# A name over 10 characters, which the compiler does not intern; app/index_pages.py's too.
_BASE = const("/base.index")
_RECORDS = const(64)  # records of a bucket read at a time: at most 320 bytes


def get(directory, key):
    """The entry text of tracking number key in the base index in directory, or None."""
    try:
        f = open(directory + _BASE, "rb")
    except OSError:
        return None  # removed since app/parcels.py looked
    try:
        # The layout: protocol/config_schema.py, "the base parcel index".
        head = f.read(16)
        if head[:3] != b"BPI":
            return None
        width = head[3]  # the fingerprint's bytes
        n, b, m = struct.unpack_from("<III", head, 4)
        digest = hashlib.sha256(key.encode()).digest()
        f.seek(16 + 4 * (struct.unpack_from("<I", digest, 0)[0] % b))
        lo, hi = struct.unpack("<II", f.read(8))
        size = width + (1 if m <= 256 else 2)  # fingerprint, the entry's number in 1 or 2 bytes
        records = 16 + 4 * (b + 1)  # where the records start
        texts = records + size * n  # where the entries' offsets start
        fp = digest[4 : 4 + width]
        f.seek(records + size * lo)
        while lo < hi:
            k = min(hi - lo, _RECORDS)
            data = f.read(size * k)
            at = data.find(fp)
            while at >= 0:
                if not at % size:
                    at += width
                    e = data[at] if size == width + 1 else data[at] | data[at + 1] << 8
                    f.seek(texts + 4 * e)
                    lo, hi = struct.unpack("<II", f.read(8))
                    f.seek(texts + 4 * (m + 1) + lo)
                    return f.read(hi - lo).decode()
                at = data.find(fp, at + 1)
            lo += k
        return None
    finally:
        f.close()
