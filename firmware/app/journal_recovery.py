# Opening the journal (docs/journal.md, "Recovery"): find the segments, keep every valid frame,
# cut a torn tail. Runs at boot (and to cut back after a failed append): app/journal.py loads
# this module for that and forgets it again, so its bytecode does not stay in the heap.
# The functions take the Journal j; sizes come from its header buffers (header, CRC part).
import binascii
import os
import struct

from micropython import const

from app.journal import _seg_name
from app.flashfile import read_or, remove_if_exists

# The journal's file names (app/journal.py; its tests reopen what it wrote).
_SUFFIX = const(".jnl")
_ACKED = const("acked")
_KEEP = const("keep")
_ENOENT = const(2)
# Scratch for CRC checks and truncation, held only while this module is loaded: RAM does
# not grow with the records.
_scratch = bytearray(256)
_scratch_mv = memoryview(_scratch)


def open_journal(j):
    """Find the segments, keep each one's valid prefix, cut a torn tail; sets the seqs."""
    try:
        os.mkdir(j._dir)
    except OSError:
        pass  # exists
    for name in os.listdir(j._dir):
        if name.endswith(".tmp"):
            remove_if_exists(j._path(name))  # an interrupted atomic write or truncation
        elif name.endswith(_SUFFIX):
            try:
                j._segs.append(int(name[: -len(_SUFFIX)]))
            except ValueError:
                pass
    j._segs.sort()
    j.acked = _read_seq(j, _ACKED)
    j._keep_from = _read_seq(j, _KEEP)
    last = 0
    segs = j._segs
    i = 0
    while i < len(segs):
        first = segs[i]
        is_tail = i == len(segs) - 1
        if first <= last:
            # Only hand-edited files overlap; the earlier segment wins.
            print("journal: segment %s overlaps seq %d - removed" % (_seg_name(first), last))
            j._remove_seg(i)
            continue
        good, frames, end = _verify(j, first)
        if good < end:
            if is_tail:
                # A torn last frame (power cut mid-write) or a corrupt one: keep the valid
                # prefix, and cut the file there so new frames follow valid data.
                print("journal: dropping tail of %s from byte %d" % (_seg_name(first), good))
                truncate(j, first, good)
            else:
                print("journal: corrupt frame in %s at byte %d" % (_seg_name(first), good))
        if not frames and not is_tail:
            j._remove_seg(i)
            continue
        # An empty tail was rolled over to just before a crash: its name still counts.
        last = first + frames - 1
        j._bytes += good
        j._tail_size = good
        i += 1
    j.last_seq = max(last, j.acked)
    j._drop_acked_segments()


def _read_seq(j, name):
    raw = read_or(j._path(name), b"")
    if raw.endswith(b"\n"):  # a torn first write has no newline yet
        try:
            return int(raw)
        except ValueError:
            print("journal: unreadable", name, "file", raw)
    return 0


def _verify(j, first):
    """Scan a segment: (bytes of its valid prefix, frames in it, file size)."""
    f = j._open_seg(first, "rb")
    good = 0
    frames = 0
    try:
        expect = first
        while True:
            seq, n = j._read_header(f)
            if seq != expect or not _crc_stream_ok(j, f, n):
                break
            good += len(j._hdr) + n
            frames += 1
            expect += 1
        end = f.seek(0, 2)
    finally:
        f.close()
    return good, frames, end


def truncate(j, first, size):
    """Cut a segment to its first size bytes: copy to a temp file, rename over it."""
    path = j._path(_seg_name(first))
    tmp = path + ".tmp"
    src = open(path, "rb")
    try:
        dst = open(tmp, "wb")
        try:
            left = size
            while left:
                chunk = _scratch if left >= len(_scratch) else _scratch_mv[:left]
                k = src.readinto(chunk)
                if k != len(chunk):
                    raise OSError(_ENOENT)  # the file shrank under us
                dst.write(chunk)
                left -= k
            dst.flush()
        finally:
            dst.close()
    finally:
        src.close()
    os.rename(tmp, path)


def _crc_stream_ok(j, f, n):
    """Check the CRC of the n-byte payload at the file position without loading it."""
    want = struct.unpack_from("<I", j._hdr, len(j._hdr_crc_part))[0]
    crc = binascii.crc32(j._hdr_crc_part)
    while n:
        chunk = _scratch if n >= len(_scratch) else _scratch_mv[:n]
        k = f.readinto(chunk)
        if k != len(chunk):
            return False  # truncated
        crc = binascii.crc32(chunk, crc)
        n -= k
    return crc == want
