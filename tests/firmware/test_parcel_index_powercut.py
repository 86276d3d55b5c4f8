"""A power cut at any moment while index pages come (issue 16): SIGKILL the real firmware's
app/config.py taking them, at random moments, on the unix port's files and on LittleFS in a
file-backed block device (a kill then falls between block programs, as a power cut on the
ESP32's flash). After every cut the index answers as the old one, or not at all (being
rebuilt: the bucket files and the gateway answer), never with facts of neither; the build
then goes on from the page not acknowledged, as the broker gives it again, and ends with
every parcel answering as the new index says."""

import json
import random
import subprocess
import time

import pytest

from devkit import ROOT, micropython
from devkit.journal_powercut import MOUNT_LFS, make_lfs_image
from protocol import config_schema

BUILDS = 4  # indexes built one after the other, each cut several times
PARCELS = 9_000  # 4 pages
STATUSES = ("pending", "rts", "cancelled", "received")

CHILD = """
import sys, os, json
BACKEND, IMAGE, PAGES, FIRST = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ROOT = "state"
if BACKEND == "lfs":
MOUNT_LFS
    os.mount(os.VfsLfs2(bdev), "/flash")
    ROOT = "/flash"
from app import config
from app.parcels import FlashIndex


class Handheld:
    pass


hh = Handheld()
hh.storage = ROOT
try:
    hh.settings = json.load(open(ROOT + "/config.json"))
except OSError:
    hh.settings = {}
hh.parcels = FlashIndex(ROOT + "/parcels")
hh.bags = FlashIndex(ROOT + "/bags")
if PAGES == "check":
    for line in open("asked.txt"):
        print(json.dumps(hh.parcels.get(line.strip())))
else:
    names = sorted(os.listdir(PAGES))
    for k in range(FIRST, len(names)):
        with open(PAGES + "/" + names[k], "rb") as f:
            config.apply(hh, f)
        print("TOOK", k)  # where the MQTT client acknowledges the page
    print("DONE")
""".replace("MOUNT_LFS", "\n".join("    " + line for line in MOUNT_LFS.strip().splitlines()))


def index_of(build: int) -> dict[str, list]:
    """The entry of every parcel in index number build: each build's statuses differ."""
    return {f"LZ{i:09d}CN": [STATUSES[(i + build) % 4], "SZ", "S1", 0] for i in range(PARCELS)}


def run(exe, tmp_path, backend, pages, first=0, kill_after=None):
    """The child's output lines and how long it ran (until killed, or to its end)."""
    started = time.monotonic()
    image = str(tmp_path / "flash.img")
    proc = subprocess.Popen(
        [exe, "-X", "heapsize=100K", str(tmp_path / "child.py"), backend, image, pages, str(first)],
        cwd=tmp_path,
        env={"MICROPYPATH": f"{ROOT / 'firmware'}:{ROOT}:.frozen"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if kill_after is not None:
        time.sleep(kill_after)
        proc.kill()
    out, _ = proc.communicate(timeout=60)
    return out.splitlines(), time.monotonic() - started


@pytest.mark.parametrize("backend", ["posix", "lfs"])
def test_an_index_cut_at_random_moments_is_old_or_absent_then_whole(tmp_path, backend):
    exe = micropython.executable()
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "state").mkdir()
    if backend == "lfs":
        make_lfs_image(exe, tmp_path / "flash.img")
    sample = random.Random(0).sample(sorted(index_of(0)), 200)
    (tmp_path / "asked.txt").write_text("\n".join(sample) + "\n")
    rng = random.Random(16)
    # Cuts fall within the time a whole build takes on this machine: a fixed window let a
    # fast machine finish every build before its kill (CI saw no cut at all).
    span = 0.25
    old: dict[str, str] | None = None  # the last index built whole
    cuts = 0
    for build in range(BUILDS):
        parcels = index_of(build)
        new = {trk: config_schema.entry_text(entry) for trk, entry in parcels.items()}
        folder = tmp_path / f"pages{build}"
        folder.mkdir()
        for k, page in enumerate(config_schema.index_pages(0, config_schema.index_file(parcels))):
            (folder / f"{k:02d}.json").write_bytes(page)
        first = 0
        while True:
            lines, ran = run(exe, tmp_path, backend, folder.name, first, rng.uniform(0, span))
            took = [int(line.split()[1]) for line in lines if line.startswith("TOOK")]
            if "DONE" in lines:
                if first == 0:
                    span = min(span, ran)
                break
            cuts += 1
            first = took[-1] + 1 if took else first
            answers = [json.loads(line) for line in run(exe, tmp_path, backend, "check")[0]]
            # One index answers, whole, or none does: never a mix, never other facts.
            assert answers in (
                [None] * len(sample),
                [old[t] for t in sample] if old else None,
                [new[t] for t in sample],
            ), (build, first, answers[:3])
        answers = [json.loads(line) for line in run(exe, tmp_path, backend, "check")[0]]
        assert answers == [new[t] for t in sample], build
        old = new
    assert cuts >= 1  # cuts happened (a fast machine finishes some builds between them)
