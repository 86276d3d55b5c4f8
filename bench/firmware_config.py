"""Taking a full-size config message on the handheld (docs/benchmarks.md, "Config message").

Builds a config the way the gateway fills one (gateway/services/device_config.py: parcels until the
payload reaches wire.MAX_MESSAGE), spools it to a file as the MQTT client does, and runs the
real firmware's app/config.py apply() on it in micropython, in a given heap. Reports:
- the payload's size and parcel count;
- the time of apply() on the spooled file: first (the indexes are written) and again with
  the same content (only the digests are computed, nothing is written);
- the live heap before, and the smallest -X heapsize (2 KB steps) the first apply completes
  in: what taking the message needs on top of what is loaded (config.py, the parcel index).

    .venv/bin/python bench/firmware_config.py --heap 100K
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from devkit import ROOT, bundle
from protocol import wire

PROGRAM = """
import gc, json, time
from app import config
from app.parcels import FlashIndex

class Handheld:
    pass

hh = Handheld()
hh.storage = STATE
hh.settings = {"device_id": "hh-bench", "bag_range": [1, 1000]}
hh.parcels = FlashIndex(STATE + "/parcels")
hh.bags = FlashIndex(STATE + "/bags")
gc.collect()
before = gc.mem_alloc()
times = []
for _ in range(2):
    t0 = time.ticks_us()
    with open(STATE + "/inbox.json", "rb") as f:
        config.apply(hh, f)
    times.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
    gc.collect()
print(json.dumps({"live_before": before, "first_ms": times[0], "again_ms": times[1],
                  "indexed": int(open(STATE + "/parcels/digest").read().split()[0])}))
"""


def full_config() -> bytes:
    """A config filled with parcels up to wire.MAX_MESSAGE, as the gateway builds one."""
    head = {
        "v": wire.VERSION,
        "time": 1_800_000_000,
        "bag_range": [1, 1000],
        "stores": ["S1"],
        "store_names": {"S1": "Shenzhen Gadgets Co."},
        "unknown_parcel": "accept",
        "arrival_tolerance_g": 200,
        "arrival_tolerance_pct": 2.0,
    }
    text = json.dumps(head, separators=(",", ":"))[:-1] + ',"drivers":[],"bags":{},"parcels":{'
    entries = []
    for i in range(2000):
        entry = f'"LZ{i:09d}CN":["{"cancelled" if i % 10 == 0 else "rts"}","SZ","S1",0]'
        if len(text) + len(",".join([*entries, entry])) + 2 > wire.MAX_MESSAGE:
            break
        entries.append(entry)
    return (text + ",".join(entries) + "}}").encode()


def run(heap: str, payload: bytes, firmware: Path, tmp: Path) -> dict | None:
    state = tmp / f"state-{heap}"
    state.mkdir()
    (state / "inbox.json").write_bytes(payload)
    script = tmp / f"bench-{heap}.py"
    script.write_text(f"STATE = {str(state)!r}\n" + PROGRAM)
    exe = str(Path(sys.executable).with_name("micropython"))
    proc = subprocess.run(
        [exe, "-X", f"heapsize={heap}", str(script)],
        env={"MICROPYPATH": f"{firmware}:.frozen"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heap", default="100K")
    args = parser.parse_args()
    payload = full_config()
    firmware = bundle.build(ROOT / "build" / "sim")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.heap, payload, firmware, Path(tmp))
        lo, hi = 8, 256  # KB: lo fails, hi completes
        while hi - lo > 2:
            mid = (lo + hi) // 2
            if run(f"{mid}K", payload, firmware, Path(tmp)) is not None:
                hi = mid
            else:
                lo = mid
    print(
        {
            "payload_bytes": len(payload),
            "parcels": len(json.loads(payload)["parcels"]),
            "heap": args.heap,
            **(result or {"failed": True}),
            "smallest_heap_kb": hi,
        }
    )


if __name__ == "__main__":
    main()
