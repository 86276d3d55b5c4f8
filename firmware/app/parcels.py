# What the handheld knows about parcels and bags, kept on flash rather than in RAM
# (docs/firmware.md, "Parcel-state cache" and "Recent parcels").
import binascii
import os
import struct

from micropython import const

import lazy

# Files per index: a lookup reads one of them, a line at a time. Each takes a 4 KiB block of
# LittleFS (above its inline limit): 32 of them took 36 blocks per index, which with a base
# index did not fit beside the journal (docs/firmware.md, "Parcel index").
BUCKETS = const(4)
_RECENT_SLOTS = const(2048)  # fingerprints of parcels in closed bags: about 6 full bags
_CHUNK = const(256)  # bytes of the recent set read at a time (a multiple of 4)
# The base parcel index, sent in pages, and its module (app/parcel_index.py): names over
# 10 characters, which the compiler does not intern (docs/firmware.md, "Few interned names").
_BASE = const("/base.index")
_BASE_INDEX = const("app.parcel_index")


def fingerprint(code):
    """A 32-bit hash of a barcode; never 0, which marks an empty slot."""
    return binascii.crc32(code.encode()) or 1


class FlashIndex:
    """A read-mostly map text key -> text value: the bucket files, replaced whole by each
    full config message and set an entry at a time by deltas (app/config.py writes them),
    and for the parcels a base index too (app/parcel_index.py).

    Lines "key<TAB>value\\n" spread over BUCKETS files by crc32(key); a lookup reads one
    file a line at a time. The gateway's config holds at most wire.MAX_MESSAGE bytes and the
    deltas since at most config_feed.OVERLAY_LIMIT entries, so a bucket file stays under
    ~8 KB; RAM holds one line. A key not there
    is looked up in the base index (app/parcel_index.py get), the file the gateway sent in
    pages (docs/firmware.md, "Parcel index").
    """

    def __init__(self, directory):
        self.dir = directory
        try:
            os.mkdir(directory)
        except OSError:
            pass  # exists

    def get(self, key):
        """The value text for key, or None: from the bucket files, which hold the newest
        entries (a full config's, and every delta's since), else from the base index."""
        needle = key.encode() + b"\t"
        try:
            f = open(self.dir + "/%d" % (fingerprint(key) % BUCKETS), "rb")
        except OSError:
            pass  # no entry in this bucket yet
        else:
            # A line at a time: a bucket of a full config and its deltas is a few KB, a block
            # too large to ask of a fragmented heap at every scan.
            with f:
                for line in f:
                    if line.startswith(needle):
                        return line[len(needle) : -1].decode()
        try:
            os.stat(self.dir + _BASE)
        except OSError:
            return None  # no base index (the bags', or none has come yet)
        # Its code is loaded for the lookup only: the handheld's heap has no room for it to
        # stay (docs/firmware.md, "Parcel index").
        return lazy.call(_BASE_INDEX, "get", self.dir, key)


def parse_parcel(text):
    """(status, hub, seller, big) from a line app/config.py wrote, or None if damaged."""
    if text is None:
        return None
    parts = text.split("\t")
    if len(parts) != 4:
        return None
    return parts[0], parts[1], parts[2], parts[3] == "1"


class RecentParcels:
    """Fingerprints of the parcels of the last closed bags, for IN_OTHER_BAG.

    A ring of _RECENT_SLOTS 32-bit fingerprints in one file (8 KB) after a 4-byte count of
    fingerprints ever added; searched in _CHUNK-byte pieces, so RAM use is the chunk. The
    chance that an unrelated parcel matches is _RECENT_SLOTS / 2^32 (about 1 in 2 million).
    """

    def __init__(self, path):
        self.path = path
        self._buf = bytearray(_CHUNK)
        try:
            if os.stat(path)[6] == 4 + 4 * _RECENT_SLOTS:
                return
        except OSError:
            pass  # first boot
        # First boot (or a damaged file): an empty ring, written whole then renamed in.
        tmp = path + ".tmp"
        f = open(tmp, "wb")
        try:
            left = 4 + 4 * _RECENT_SLOTS
            while left:
                k = min(left, _CHUNK)
                f.write(memoryview(self._buf)[:k])
                left -= k
            f.flush()
        finally:
            f.close()
        os.rename(tmp, path)

    def contains(self, fp):
        needle = struct.pack("<I", fp)
        buf = self._buf
        f = open(self.path, "rb")
        try:
            f.seek(4)
            while True:
                n = f.readinto(buf)
                if not n:
                    return False
                at = buf.find(needle, 0, n)
                while at >= 0:
                    if not at & 3:
                        return True
                    at = buf.find(needle, at + 1, n)
        finally:
            f.close()

    def add(self, fps, n):
        """Add the first n fingerprints of the packed array fps (a closed bag's parcels)."""
        f = open(self.path, "r+b")
        try:
            f.readinto(memoryview(self._buf)[:4])
            count = struct.unpack_from("<I", self._buf, 0)[0]
            mv = memoryview(fps)
            i = 0
            while i < n:
                slot = (count + i) % _RECENT_SLOTS
                k = min(n - i, _RECENT_SLOTS - slot)
                f.seek(4 + 4 * slot)
                f.write(mv[4 * i : 4 * (i + k)])
                i += k
            struct.pack_into("<I", self._buf, 0, (count + n) & 0xFFFFFFFF)
            f.seek(0)
            f.write(memoryview(self._buf)[:4])
            f.flush()
        finally:
            f.close()
