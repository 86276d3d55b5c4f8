"""Power-cut soak of the whole handheld: SIGKILL the firmware at random moments while scanning.

Each round boots the firmware (tools/lib/control.LocalHandheld, no gateway) on the same
flash, checks what it recovered, sends a burst of parcel scans and kills the process after a
random delay - mid-scan, mid-append, mid-flush, mid-beep. After every restart:
- every scan that got an OK beep before the kill is in the journal exactly once;
- every journal record is valid (wire_schema.record_error) and the seqs run 1, 2, 3... without gaps;
- the open bag is rebuilt: the handheld's bag_count equals the parcels the journal holds for it.
Bags are weighed and closed when nearly full, so long soaks go on past 300 parcels.

    .venv/bin/python bench/firmware_powercut.py --kills 200
(tests/firmware/test_handheld_powercut.py runs 30; BAGSCAN_POWERCUTS=200 runs more.)
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools" / "lib")]

from control import ControlError, LocalHandheld  # noqa: E402

from firmware.app import wire_schema  # noqa: E402

_CLOSE_AT = 280  # parcels in the open bag before the soak weighs and closes it


def check(hh: LocalHandheld, confirmed: set[str]) -> dict:
    """The invariants after a restart; returns the handheld's state."""
    recs = hh.journal()
    seqs = [r["s"] for r in recs]
    if seqs != list(range(1, len(seqs) + 1)):
        raise AssertionError(f"journal seqs not contiguous from 1: {seqs[:5]}...{seqs[-5:]}")
    for r in recs:
        err = wire_schema.record_error(r)
        if err:
            raise AssertionError(f"corrupt record {r}: {err}")
    parcels = [r["trk"] for r in recs if r["k"] == "parcel"]
    if len(parcels) != len(set(parcels)):
        raise AssertionError("a scan is in the journal twice")
    missing = confirmed - set(parcels)
    if missing:
        raise AssertionError(f"confirmed scans lost: {sorted(missing)[:5]}")
    open_bag, in_bag = None, 0
    for r in recs:
        if r["k"] == "bag_open":
            open_bag, in_bag = r["bag"], 0
        elif r["k"] == "parcel" and r["bag"] == open_bag:
            in_bag += 1
        elif r["k"] == "bag_close" and r["bag"] == open_bag:
            open_bag, in_bag = None, 0
    state = hh.control.state()
    if state["bag"] != open_bag or state["bag_count"] != in_bag:
        raise AssertionError(f"bag not rebuilt: {state} vs {open_bag} with {in_bag} parcels")
    return state


def soak(state_dir: Path, kills: int, seed: int, heap: str) -> dict:
    rng = random.Random(seed)
    cfg = {
        "device_id": "hh-soak",
        "mqtt": {"host": "127.0.0.1", "port": 9, "user": "u", "password": "p"},
        "bag_range": [1, 100000],
    }
    hh = LocalHandheld(state_dir, cfg, heap)
    confirmed: set[str] = set()
    serial = 0
    started = time.monotonic()
    try:
        for _ in range(kills):
            hh.start()
            ctl = hh.control
            state = check(hh, confirmed)
            if state["bag_count"] >= _CLOSE_AT:
                ctl.weigh(20_000)
                ctl.key("ok")
                ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
            burst = rng.randint(1, 12)
            for _ in range(burst):
                serial += 1
                ctl.send(f"scan LZ{seed:04d}{serial:08d}")
            deadline = time.monotonic() + rng.uniform(0.0, 0.06)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = ctl.expect(lambda o: "beep" in o, timeout=left)
                except ControlError:
                    break
                if event["beep"] == "ok":
                    confirmed.add(event["screen"][2])
            hh.kill()
        hh.start()
        check(hh, confirmed)
    finally:
        hh.kill()
    return {
        "kills": kills,
        "confirmed": len(confirmed),
        "records": len(hh.journal()),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10000)
    parser.add_argument("--heap", default=None, help="default: tools/lib/sim.py DEFAULT_HEAP")
    args = parser.parse_args()
    from sim import DEFAULT_HEAP

    with tempfile.TemporaryDirectory() as tmp:
        print(soak(Path(tmp) / "flash", args.kills, args.seed, args.heap or DEFAULT_HEAP))


if __name__ == "__main__":
    main()
