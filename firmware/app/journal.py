# Crash-safe on-flash journal: every accepted action is on flash before the OK beep (docs/journal.md).
#
# Frame = 12-byte header + compact JSON payload. Header, little-endian:
#   magic u16 | payload length u16 | seq u32 | crc32 u32 (over header bytes 0..7, then payload)
# Segments are files "<dir>/<first seq, 8 digits>.jnl"; the acked seq lives in "<dir>/acked".
import binascii
import json
import os
import struct

from micropython import const

import lazy
from app.flashfile import write_atomic

_MAGIC = const(0x4A42)  # b"BJ": a zeroed or erased (0xFF) region never parses as a frame
_HDR = const("<HHII")
_HDR_SIZE = const(12)
_CRC_AT = const(8)
# A record is one scan action (a few ids and a weight); 2 KB leaves ample room and bounds
# what read() may have to load for a single record.
_MAX_PAYLOAD = const(2048)
_ENOSPC = const(28)  # the unix port's errno module has no ENOSPC
_ENOENT = const(2)
# File names; app/journal_recovery.py reads them back under the same names.
_SUFFIX = const(".jnl")
_ACKED = const("acked")
_KEEP = const("keep")
# Opening (segments, torn tail) and cutting back a failed append, loaded only while they run.
_RECOVERY = const("app.journal_recovery")


class JournalFull(OSError):
    """The flash (or the configured max_bytes budget) cannot take another record."""


def _seg_name(seq):
    return "%08d%s" % (seq, _SUFFIX)


class Journal:
    def __init__(self, path, segment_bytes=16384, max_bytes=0):
        self._dir = path.rstrip("/") or "/"
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes  # 0: limited only by the flash
        self._hdr = bytearray(_HDR_SIZE)
        self._hdr_crc_part = memoryview(self._hdr)[:_CRC_AT]
        self._segs = []  # first seq of each segment file, ascending; the last one is the tail
        self._tail_size = 0  # bytes of confirmed frames in the tail segment
        self._bytes = 0  # bytes of confirmed frames in all segments (for max_bytes)
        self._f = None  # writer on the tail, positioned at _tail_size
        self._dirty = False  # an append failed: cut the tail back before writing again
        self.acked = 0
        self.last_seq = 0
        self._keep_from = 0
        lazy.call(_RECOVERY, "open_journal", self)

    # ---- public API ---------------------------------------------------------------------

    @property
    def depth(self):
        # Seqs are contiguous; a gap only follows a corrupt frame in an older segment.
        return self.last_seq - self.acked

    def append(self, record):
        seq = self.last_seq + 1
        record["s"] = seq
        payload = json.dumps(record, separators=(",", ":")).encode()
        n = len(payload)
        if n > _MAX_PAYLOAD:
            raise ValueError("record too large")
        size = _HDR_SIZE + n
        if self.max_bytes and self._bytes + size > self.max_bytes:
            raise JournalFull(_ENOSPC, "journal full")
        hdr = self._hdr
        struct.pack_into(_HDR, hdr, 0, _MAGIC, n, seq, 0)
        crc = binascii.crc32(payload, binascii.crc32(self._hdr_crc_part))
        struct.pack_into("<I", hdr, _CRC_AT, crc)
        try:
            f = self._writer(seq, size)
            f.write(hdr)
            f.write(payload)
            f.flush()  # LittleFS commits here; a power cut before it leaves the old file
        except OSError as e:
            # The frame is partial: make sure nothing of it can read back as valid. Zero its
            # magic (on LittleFS a failed write marks the file errored, so its uncommitted
            # data never reaches the flash anyway), and cut the tail back before the next.
            self._dirty = True
            f = self._f
            self._f = None
            if f is not None:
                try:
                    f.seek(self._tail_size)
                    f.write(b"\0\0")
                    f.flush()
                except OSError:
                    pass
                try:
                    f.close()
                except OSError:
                    pass
            if e.errno == _ENOSPC:
                raise JournalFull(_ENOSPC, "journal full")  # noqa: B904 - MicroPython warns on exception chaining
            raise
        self._tail_size += size
        self._bytes += size
        self.last_seq = seq
        return seq

    def read(self, after, max_bytes):
        """The encoded records after seq `after`: at least one, then up to max_bytes in all."""
        out = []
        self._read(after, max_bytes, out, None, 0)
        return out

    def read_into(self, after, buf, start):
        """Copy the records after seq `after` into buf from start on, joined by commas, as
        many as fit; returns (end of the copied bytes, seq of the last record copied).

        The sync drains the backlog through one buffer this way: records read one by one
        would be allocated between short-lived garbage and fragment a ~100 KB heap.
        """
        return self._read(after, len(buf) - start, None, buf, start)

    def _read(self, after, max_bytes, out, buf, start):
        # Records go to the list out, or into buf from start on; returns (end, last seq read).
        at = start
        total = 0
        last = after
        segs = self._segs
        for i in range(len(segs)):
            if i + 1 < len(segs) and segs[i + 1] - 1 <= after:
                continue  # every record in this segment is <= after
            f = self._open_seg(segs[i], "rb")
            try:
                while True:
                    seq, n = self._read_header(f)
                    if seq < 0:
                        break  # end of the segment, or a corrupt frame (logged at open)
                    if seq > self.last_seq:
                        return at, last  # left by a failed append; not part of the journal
                    if seq <= after:
                        f.seek(n, 1)
                        continue
                    comma = 1 if buf is not None and total else 0
                    if (total or buf is not None) and total + comma + n > max_bytes:
                        return at, last
                    if buf is None:
                        payload = f.read(n)
                        got = len(payload)
                    else:
                        if comma:
                            buf[at] = 44  # ","
                        payload = memoryview(buf)[at + comma : at + comma + n]
                        got = f.readinto(payload)
                    crc = binascii.crc32(payload, binascii.crc32(self._hdr_crc_part))
                    if got != n or crc != struct.unpack_from("<I", self._hdr, _CRC_AT)[0]:
                        print("journal: bad frame, seq", seq, "in", _seg_name(segs[i]))
                        break
                    if buf is None:
                        out.append(payload)
                    else:
                        at += comma + n
                    total += comma + n
                    last = seq
            finally:
                f.close()
        return at, last

    @property
    def keep_from(self):
        """Records from this seq on stay on flash even once acked (0: none kept).

        The app keeps the open bag's records so it can rebuild the bag after a power cut.
        """
        return self._keep_from

    @keep_from.setter
    def keep_from(self, seq):
        if seq != self._keep_from:
            write_atomic(self._path(_KEEP), b"%d\n" % seq)
            self._keep_from = seq

    def ack(self, seq):
        if seq <= self.acked:
            return  # duplicate or stale ack
        if seq > self.last_seq:
            raise ValueError("ack beyond last seq")
        # Persist first: a crash before the deletions below only leaves fully acked segments,
        # which the next open deletes.
        write_atomic(self._path(_ACKED), b"%d\n" % seq)
        self.acked = seq
        self._drop_acked_segments()

    def close(self):
        f = self._f
        self._f = None
        if f is not None:
            f.close()

    # ---- segments -----------------------------------------------------------------------

    def _writer(self, seq, size):
        """The open tail, rolled over to a new segment named seq when size does not fit."""
        if self._dirty:
            if self._segs:
                first = self._segs[-1]
                try:
                    end = os.stat(self._path(_seg_name(first)))[6]
                except OSError:
                    end = 0
                if end > self._tail_size:
                    lazy.call(_RECOVERY, "truncate", self, first, self._tail_size)
            self._dirty = False
        fits = self._tail_size == 0 or self._tail_size + size <= self.segment_bytes
        if self._f is not None:
            if fits:
                return self._f
            self.close()
        elif self._segs and fits:
            f = self._open_seg(self._segs[-1], "r+b")
            f.seek(self._tail_size)
            self._f = f
            return f
        f = self._open_seg(seq, "wb")
        self._segs.append(seq)
        self._tail_size = 0
        self._f = f
        return f

    def _drop_acked_segments(self):
        segs = self._segs
        limit = self.acked
        if self._keep_from and self._keep_from <= limit:
            limit = self._keep_from - 1
        while segs:
            if len(segs) > 1:
                last_in_seg = segs[1] - 1
            else:
                last_in_seg = self.last_seq
            if last_in_seg > limit:
                break
            if len(segs) == 1:
                self.close()
                self._bytes -= self._tail_size
                self._tail_size = 0
                self._dirty = False
            else:
                try:
                    self._bytes -= os.stat(self._path(_seg_name(segs[0])))[6]
                except OSError:
                    pass
            self._remove_seg(0)
        if self._bytes < 0:
            self._bytes = 0

    def _remove_seg(self, i):
        try:
            os.remove(self._path(_seg_name(self._segs[i])))
        except OSError as e:
            if e.errno != _ENOENT:
                raise
        self._segs.pop(i)

    # ---- frames -------------------------------------------------------------------------

    def _read_header(self, f):
        """(seq, payload length) of the next frame, or (-1, 0) at the end or on a bad header."""
        if f.readinto(self._hdr) != _HDR_SIZE:
            return -1, 0
        magic, n, seq, _ = struct.unpack_from(_HDR, self._hdr, 0)
        if magic != _MAGIC or n > _MAX_PAYLOAD:
            return -1, 0
        return seq, n

    def _open_seg(self, first, mode):
        return open(self._path(_seg_name(first)), mode)

    def _path(self, name):
        return self._dir + "/" + name
