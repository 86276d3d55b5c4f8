"""Power cuts while scanning: no confirmed scan is lost or doubled, the open bag comes back.

The soak itself is bench/firmware_powercut.py; BAGSCAN_POWERCUTS=200 runs the issue's 200.
"""

import os
import random
import sys
from pathlib import Path

from sim import DEFAULT_HEAP

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from firmware_powercut import soak  # noqa: E402


def test_every_confirmed_scan_survives_random_power_cuts(tmp_path):
    kills = int(os.environ.get("BAGSCAN_POWERCUTS", "30"))
    seed = random.randrange(10000)
    result = soak(tmp_path / "flash", kills, seed, DEFAULT_HEAP)
    assert result["kills"] == kills, f"seed {seed}"
    assert result["confirmed"] > 0
