"""The scale's calibration: reading and writing its file, tare and calibrate. Runs at boot
and when a scale is calibrated, so drivers/scale.py loads it for the call (lazy.call) and
the weighing code alone stays in the heap. The functions take the Scale s."""

import json
import os


def load(s):
    try:
        with open(s.path) as f:
            saved = json.load(f)
        _use(s, saved["factor"], saved["cal_id"], saved.get("offset", 0))
    except (OSError, ValueError, KeyError, TypeError):
        # Missing or unreadable file: the device must be calibrated before weighing.
        s.factor = None
        s.cal_id = None


def put(s, factor, cal_id, offset=None):
    """Scale.set_calibration: use it, then save it (temporary file, then rename, so a power
    cut leaves the old or the new calibration)."""
    _use(s, factor, cal_id, s.offset if offset is None else offset)
    tmp = s.path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"factor": s.factor, "offset": s.offset, "cal_id": s.cal_id}, f)
    os.rename(tmp, s.path)


def _use(s, factor, cal_id, offset):
    if abs(factor) < 0.01:  # counts per gram: a calibration must move the reading
        raise ValueError("calibration factor too small: %r counts/g" % factor)
    s.factor = float(factor)
    s.cal_id = str(cal_id)
    s.offset = int(offset)
    s._tolerance = max(1, int(abs(s.tolerance_g * s.factor)))
    s._step = max(1, int(abs(s.step_g * s.factor)))


async def tare(s, timeout_ms=5000):
    """Zero the empty platform (kept in RAM; calibrate() stores it)."""
    s.offset = await s.stable_counts(timeout_ms)


async def calibrate(s, grams, cal_id, timeout_ms=5000):
    """With the platform tared and grams on it: store counts per gram under cal_id."""
    counts = await s.stable_counts(timeout_ms)
    put(s, (counts - s.offset) / grams, cal_id)
