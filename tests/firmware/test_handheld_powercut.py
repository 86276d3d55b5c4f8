"""Power cuts while scanning: no confirmed scan is lost or doubled, the open bag comes back.

The soak is devkit/handheld_powercut.py (also bench/firmware_powercut.py); BAGSCAN_POWERCUTS=200
runs the issue's 200, BAGSCAN_POWERCUT_SEED=N repeats the run printed as "seed N".
"""

import os
import random

from devkit.handheld import DEFAULT_HEAP
from devkit.handheld_powercut import soak


def test_every_confirmed_scan_survives_random_power_cuts(tmp_path):
    kills = int(os.environ.get("BAGSCAN_POWERCUTS", "30"))
    seed = int(os.environ.get("BAGSCAN_POWERCUT_SEED") or random.randrange(10000))
    print(f"power cuts: seed {seed} (BAGSCAN_POWERCUT_SEED={seed} repeats this run)", flush=True)
    result = soak(tmp_path / "flash", kills, seed, DEFAULT_HEAP)
    journal, confirmed = result["journal"], result["confirmed"]
    assert confirmed, "no scan was confirmed between the cuts"
    parcels = [r["trk"] for r in journal if r["k"] == "parcel"]
    # Every scan the handheld confirmed with an OK beep is in the journal exactly once.
    assert {trk: parcels.count(trk) for trk in confirmed} == dict.fromkeys(confirmed, 1)
    assert len(parcels) == len(set(parcels)), "a scan is in the journal twice"
    assert [r["s"] for r in journal] == list(range(1, len(journal) + 1))
    # The open bag after the last cut is the journal's: its parcels since its bag_open.
    opened = max(i for i, r in enumerate(journal) if r["k"] == "bag_open")
    closed = any(r["k"] == "bag_close" for r in journal[opened:])
    in_bag = 0 if closed else sum(r["k"] == "parcel" for r in journal[opened:])
    assert result["state"]["bag_count"] == in_bag
