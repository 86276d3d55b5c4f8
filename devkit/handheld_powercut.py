"""Power-cut soak of the whole handheld: SIGKILL the firmware at random moments while scanning.

Each round boots the firmware (devkit.handheld.SimHandheld, no gateway) on the same
flash, checks what it recovered, sends a burst of parcel scans and kills the process after a
random delay - mid-scan, mid-append, mid-flush, mid-beep. After every restart:
- every scan that got an OK beep before the kill is in the journal exactly once;
- every journal record is valid (wire_schema.record_error) and the seqs run 1, 2, 3... without gaps;
- the open bag is rebuilt: the handheld's bag_count equals the parcels the journal holds for it.
Bags are weighed and closed when nearly full, so long soaks go on past 300 parcels.

The command: bench/firmware_powercut.py; the test: tests/firmware/test_handheld_powercut.py.
"""

import random
import time
from pathlib import Path

from devkit.control import ControlError
from devkit.handheld import SimHandheld
from protocol import wire_schema

_CLOSE_AT = 280  # parcels in the open bag before the soak weighs and closes it


def check(hh: SimHandheld, confirmed: set[str]) -> dict:
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
    """`kills` power cuts, the invariants checked after every restart (AssertionError on the
    first broken one). Returns the scans confirmed by an OK beep, the journal and the state
    after the last restart."""
    rng = random.Random(seed)
    cfg = {
        "device_id": "hh-soak",
        "mqtt": {"host": "127.0.0.1", "port": 9, "user": "u", "password": "p"},
        "bag_range": [1, 100000],
    }
    hh = SimHandheld.with_config(state_dir, cfg, heap)
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
        state = check(hh, confirmed)
    finally:
        hh.kill()
    return {
        "kills": kills,
        "confirmed": confirmed,
        "journal": hh.journal(),
        "state": state,
        "seconds": round(time.monotonic() - started, 1),
    }
