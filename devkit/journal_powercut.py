"""Power-cut soak for the firmware journal: SIGKILL a MicroPython writer at random moments.

Each round starts `micropython` on the same journal. The child recovers, dumps every unacked
record, then appends in a loop, printing "OK <seq>" after append() returns (that is the
confirmation the OK beep stands for) and acking now and then ("ACK <seq>"). The parent kills
it at a random moment - during recovery, an append, an ack or a compaction - and checks what
the next round recovers: every confirmed seq above the acked one is there exactly once and in
order, nothing is corrupt, acked never goes back, and the next append continues the sequence.

Backends: "posix" (the unix port's own files) and "lfs" (LittleFS in a file-backed block
device, so a kill lands between block writes like a power cut on the ESP32's flash).

The command: bench/powercut.py; the test: tests/firmware/test_journal.py. A violation names
the seed and the round.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from devkit import ROOT
from devkit import micropython as micropython_port

FIRMWARE = ROOT / "firmware"

LFS_BLOCK = 4096
LFS_BLOCKS = 128

# A block device over a host file: every writeblocks() is one write(2) that a SIGKILL cannot
# split, so a kill falls between LittleFS's block programs as a power cut would.
MOUNT_LFS = f"""
import os
class FileBlockDev:
    def __init__(self, path, block_size, blocks):
        self.f = open(path, "r+b")
        self.bs = block_size
        self.n = blocks
    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * self.bs + offset)
        self.f.readinto(buf)
    def writeblocks(self, block, buf, offset=0):
        self.f.seek(block * self.bs + offset)
        self.f.write(buf)
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            return 0
bdev = FileBlockDev(IMAGE, {LFS_BLOCK}, {LFS_BLOCKS})
"""

CHILD = """
import sys, json
BACKEND, DIR, IMAGE, SEG = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if BACKEND == "lfs":
MOUNT_LFS
    try:
        os.mount(os.VfsLfs2(bdev), "/flash")
    except OSError as e:
        print("MOUNTFAIL", e)
        raise
from app.journal import Journal
j = Journal(DIR, segment_bytes=SEG)
print("START", j.acked, j.last_seq)
after = j.acked
while True:
    page = j.read(after, 1024)
    if not page:
        break
    for p in page:
        print("R", p.decode())
    after = json.loads(page[-1])["s"]
print("READY")
while True:
    n = j.last_seq + 1
    s = j.append({"k": "scan", "n": n, "p": "LZ%010d" % n})
    print("OK", s)
    if s % 37 == 0:
        j.ack(s - 10)
        print("ACK", s - 10)
""".replace("MOUNT_LFS", "\n".join("    " + line for line in MOUNT_LFS.strip().splitlines()))


def make_lfs_image(micropython: str, image: Path) -> None:
    image.write_bytes(b"\xff" * (LFS_BLOCK * LFS_BLOCKS))
    code = f"IMAGE = {str(image)!r}\n" + MOUNT_LFS + "os.VfsLfs2.mkfs(bdev)\n"
    subprocess.run([micropython, "-c", code], check=True, timeout=30)


class Violation(AssertionError):
    pass


def run(
    kills: int,
    backend: str = "posix",
    seed: int | None = None,
    workdir: Path | None = None,
    max_wait: float = 0.15,
    segment_bytes: int = 1024,
    micropython: str | None = None,
    heap: str = "100K",
) -> dict:
    """Kill the writer `kills` times; raise Violation on the first broken promise."""
    micropython = micropython or micropython_port.executable()
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="powercut-")) if own_dir else workdir
    work.mkdir(parents=True, exist_ok=True)
    script = work / "child.py"
    script.write_text(CHILD)
    image = work / "flash.img"
    if backend == "lfs":
        make_lfs_image(micropython, image)
        jdir = "/flash/journal"
    else:
        jdir = str(work / "journal")
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:{ROOT}:.frozen")

    max_confirmed = 0  # highest seq whose "OK" line was printed
    max_acked = 0  # highest seq whose "ACK" line was printed
    stats = {
        "seed": seed,
        "kills": 0,
        "confirmed": 0,
        "recoveries_checked": 0,
        "appends": 0,
        "repairs": 0,
    }
    t0 = time.monotonic()

    def fail(msg: str, out: str) -> None:
        tail = "\n".join(out.splitlines()[-15:])
        raise Violation(
            f"seed={seed} round={stats['kills']}: {msg}\n--- child output tail:\n{tail}"
        )

    for _ in range(kills + 1):
        last_round = stats["kills"] == kills
        out_path = work / "out.txt"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [
                    micropython,
                    "-X",
                    f"heapsize={heap}",
                    str(script),
                    backend,
                    jdir,
                    str(image),
                    str(segment_bytes),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=work,
            )
            if last_round:
                # The final round only recovers and dumps: wait for READY, then stop it.
                deadline = time.monotonic() + 30
                while b"READY" not in out_path.read_bytes() and proc.poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
            else:
                time.sleep(rng.uniform(0, max_wait))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        text = out_path.read_text(errors="replace")
        # Only complete lines were printed before the kill; a torn last line is discarded.
        lines = text.split("\n")[:-1]
        if "Traceback" in text or "MOUNTFAIL" in text:
            fail("child crashed", text)
        start = next((ln for ln in lines if ln.startswith("START ")), None)
        if start is not None:
            _, acked, last = start.split()
            acked, last = int(acked), int(last)
            if acked < max_acked:
                fail(f"acked went back: {acked} < {max_acked}", text)
            if last < max_confirmed:
                fail(f"confirmed seq {max_confirmed} lost: last_seq {last}", text)
            if last > max_confirmed + 1:
                fail(f"last_seq {last} beyond the one in-flight append ({max_confirmed})", text)
            dumped = [json.loads(ln[2:]) for ln in lines if ln.startswith("R ")]
            expect = acked + 1
            for rec in dumped:
                if rec.get("s") != expect or rec.get("n") != expect:
                    fail(f"record {rec} where seq {expect} belongs", text)
                if rec.get("p") != f"LZ{expect:010d}":
                    fail(f"record {rec} has a foreign payload", text)
                expect += 1
            if "READY" in lines:
                stats["recoveries_checked"] += 1
                if expect - 1 != last:
                    fail(f"dump ends at {expect - 1}, last_seq is {last}", text)
            oks = [int(ln.split()[1]) for ln in lines if ln.startswith("OK ")]
            if oks and oks != list(range(last + 1, last + 1 + len(oks))):
                fail(f"appends after recovery do not continue from {last}: {oks[:3]}...", text)
            if oks:
                max_confirmed = oks[-1]
                stats["appends"] += len(oks)
            elif last > max_confirmed:
                # The in-flight append of an earlier round made it; it is now part of the
                # journal and must not be lost later.
                max_confirmed = last
        elif any(ln.startswith(("OK", "ACK", "R ")) for ln in lines):
            fail("output before START", text)
        for ln in lines:
            if ln.startswith("ACK "):
                max_acked = max(max_acked, int(ln.split()[1]))
        stats["repairs"] += sum(1 for ln in lines if ln.startswith("journal:"))
        if not last_round:
            stats["kills"] += 1
    stats["confirmed"] = max_confirmed
    stats["acked"] = max_acked
    stats["seconds"] = round(time.monotonic() - t0, 2)
    if own_dir:
        shutil.rmtree(work, ignore_errors=True)
    return stats
