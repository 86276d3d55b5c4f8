"""The handheld's base parcel index at warehouse size (docs/benchmarks.md, "Parcel index").

Builds the index of N parcels (default 50,000; several sellers, every status and hub) as the
gateway does (protocol/config_schema.py index_file and index_pages), spools each page to a
file as the MQTT client does, and runs the real firmware's app/config.py apply() on them in
micropython under a given heap, then looks parcels up through FlashIndex.get, the call a
scan makes (which loads app/parcel_index.py for the lookup and drops it again). Reports:
- the gateway's time to build the file and its pages, and the page count;
- the handheld's build time (every page taken, the index put in place) and its live heap;
- the index's bytes on flash, and the LittleFS blocks (4 KiB) it takes on the ESP32;
- lookup times, median and p99, of known parcels (in the base only) and of unknown ones,
  with the live heap filled to --ballast bytes with small objects, as the running
  handheld's is (each lookup's collection marks them).

    .venv/bin/python bench/parcel_index.py --parcels 50000 --heap 100K
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devkit import ROOT, bundle
from protocol import config_schema

BLOCK_BYTES = bundle.BLOCK_BYTES

PROGRAM = """
import gc, json, os, time
from app import config
from app.parcels import FlashIndex

class Handheld:
    pass

hh = Handheld()
hh.storage = STATE
hh.settings = {"device_id": "hh-bench", "bag_range": [1, 1000], "s": 1}
hh.parcels = FlashIndex(STATE + "/parcels")
hh.bags = FlashIndex(STATE + "/bags")
# The running handheld's other live objects, in small blocks as its modules' are: each
# lookup's collection (lazy.call) marks them all.
ballast = []
while gc.mem_alloc() < BALLAST:
    ballast.append(bytearray(48))
gc.collect()
before = gc.mem_alloc()
t0 = time.ticks_us()
for name in sorted(os.listdir(PAGES)):
    with open(PAGES + "/" + name, "rb") as f:
        taken = config.apply(hh, f)
build_ms = time.ticks_diff(time.ticks_us(), t0) / 1000
print(json.dumps({"live_before": before, "build_ms": build_ms, "taken": taken,
                  "n": hh.settings.get("n")}))
for line in open(ASKED):  # a line at a time: the list would take the heap measured
    trk = line.strip()
    t0 = time.ticks_us()
    text = hh.parcels.get(trk)
    print(json.dumps([time.ticks_diff(time.ticks_us(), t0), text]))
"""

STATUSES = ("pending", "rts", "cancelled", "received")


def warehouse(count: int, sellers: int) -> dict[str, list]:
    """count parcels of several sellers, every status and hub, a few big sea-freight items."""
    rng = random.Random(16)
    return {
        f"LZ{i:09d}CN": config_schema.parcel_entry(
            rng.choice(STATUSES), rng.choice(config_schema.HUBS), f"S{i % sellers}", i % 50 == 0
        )
        for i in range(count)
    }


def _shared(parcels: dict, slot: tuple, width: int, buckets: int) -> bool:
    """Whether another parcel has this bucket and fingerprint (both are left out)."""
    found = 0
    for trk in parcels:
        key, fp = config_schema.index_key(trk, width)
        found += (key % buckets, fp) == slot
    return found > 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", type=int, default=50_000)
    parser.add_argument("--sellers", type=int, default=8)
    parser.add_argument("--heap", default="100K")
    parser.add_argument("--lookups", type=int, default=2_000)
    # The running handheld's live heap is ~92 KB after boot (docs/firmware.md, "Memory").
    parser.add_argument("--ballast", type=int, default=80_000, help="live heap to fill to")
    args = parser.parse_args()
    parcels = warehouse(args.parcels, args.sellers)
    t0 = time.perf_counter()
    index = config_schema.index_file(parcels)
    pages = config_schema.index_pages(1, index)
    gateway_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(1)
    known = rng.sample(sorted(parcels), args.lookups)
    unknown = [f"LZ{900_000_000 + i:09d}CN" for i in range(args.lookups // 10)]
    firmware = bundle.build(ROOT / "build" / "sim")
    with tempfile.TemporaryDirectory() as tmp:
        state, spool = Path(tmp) / "state", Path(tmp) / "pages"
        state.mkdir()
        spool.mkdir()
        for k, page in enumerate(pages):
            (spool / f"{k:04d}.json").write_bytes(page)
        (Path(tmp) / "asked.txt").write_text("\n".join(known + unknown) + "\n")
        script = Path(tmp) / "bench.py"
        script.write_text(
            f"STATE = {str(state)!r}\nPAGES = {str(spool)!r}\nBALLAST = {args.ballast}\n"
            f"ASKED = {str(Path(tmp) / 'asked.txt')!r}\n" + PROGRAM
        )
        exe = str(Path(sys.executable).with_name("micropython"))
        proc = subprocess.run(
            [exe, "-X", f"heapsize={args.heap}", str(script)],
            env={"MICROPYPATH": f"{firmware}:.frozen"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"micropython failed:\n{proc.stdout[-2000:]}\n{proc.stderr}")
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[0])
        answers = [json.loads(line) for line in lines[1:]]
        flash_bytes = (state / "parcels" / "base.index").stat().st_size
    # Numbers that share a bucket and fingerprint are left out of the index: None is right.
    _, width, n, buckets, _ = config_schema.INDEX_HEADER.unpack_from(index)
    left_out = len(parcels) - n
    slot = {}
    for trk in known:
        key, fp = config_schema.index_key(trk, width)
        slot[trk] = (key % buckets, fp)
    wrong = sum(
        text != config_schema.entry_text(parcels[trk])
        and not (text is None and left_out and _shared(parcels, slot[trk], width, buckets))
        for trk, (_, text) in zip(known, answers, strict=False)
    )
    false_hits = sum(text is not None for _, text in answers[len(known) :])
    known_us = [us for us, _ in answers[: len(known)]]
    unknown_us = [us for us, _ in answers[len(known) :]]
    print(
        json.dumps(
            {
                "parcels": args.parcels,
                "sellers": args.sellers,
                "heap": args.heap,
                "gateway_build_ms": round(gateway_ms),
                "pages": len(pages),
                "page_bytes_max": max(len(p) for p in pages),
                "handheld_build_ms": round(result["build_ms"]),
                "index_taken": result["taken"],
                "n": result["n"],
                "live_heap_before": result["live_before"],
                "flash_bytes": flash_bytes,
                "flash_blocks_esp32": -(-flash_bytes // BLOCK_BYTES),
                "lookup_known_median_ms": statistics.median(known_us) / 1000,
                "lookup_known_p99_ms": statistics.quantiles(known_us, n=100)[98] / 1000,
                "lookup_unknown_median_ms": statistics.median(unknown_us) / 1000,
                "lookup_unknown_p99_ms": statistics.quantiles(unknown_us, n=100)[98] / 1000,
                "fingerprint_bytes": width,
                "left_out": left_out,
                "wrong_answers": wrong,
                "unknown_found": false_hits,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
