"""A weighing scale over a raw-count source: filtering, stability, range; its calibration
(tare, calibrate, the file) is drivers/scale_cal.py, loaded only while it runs."""

import asyncio
import time
from array import array
from micropython import const

import lazy

# Error codes the app shows (docs/domain.md: errors are values the user sees).
_OVERLOAD = const("SCALE_OVERLOAD")
_UNDERLOAD = const("SCALE_UNDERLOAD")
_UNSTABLE = const("SCALE_UNSTABLE")
_NOT_CALIBRATED = const("SCALE_NOT_CALIBRATED")

# Before calibration there is no counts-per-gram: judge stability in raw counts. A 100 kg
# cell at 2 mV/V on a 3.3 V bridge gives about 28 counts/g at gain 128, so 500 is ~20 g.
_UNCALIBRATED_TOLERANCE = const(500)
# Just over one conversion at 80 SPS (12.5 ms, datasheet "Output Data Rate"): a sample
# usually takes one wait, and each wake-up of a task allocates (asyncio).
_READY_POLL_MS = const(13)
_READY_TIMEOUT_MS = const(500)
_CAL = const("drivers.scale_cal")


class ScaleError(Exception):
    """A refusal with a code from this module (OVERLOAD, UNDERLOAD, ...) and the number it
    is about; no text, as the device never shows one (the code picks the screen text)."""

    def __init__(self, code, value=None):
        super().__init__(code, value)
        self.code = code


class Scale:
    """source.read_raw() gives signed counts; source.ready() (optional) says a conversion waits.

    path is the JSON file holding {"factor", "offset", "cal_id"} (drivers/scale_cal.py).
    """

    def __init__(
        self,
        source,
        path,
        capacity_g=60000,
        tolerance_g=20,
        stable_count=5,
        median_n=5,
        average_n=4,
        step_g=200,
    ):
        self.source = source
        self.ready = getattr(source, "ready", None)
        self.path = path
        self.capacity_g = capacity_g
        self.tolerance_g = tolerance_g
        self.stable_count = stable_count
        self.step_g = step_g
        self._samples = array("i", [0] * median_n)
        self._ring = array("i", [0] * average_n)
        self._ring_len = 0
        self._ring_pos = 0
        self._ring_sum = 0
        self.offset = 0
        self.factor = None
        self.cal_id = None
        self._tolerance = _UNCALIBRATED_TOLERANCE
        self._step = _UNCALIBRATED_TOLERANCE * 10
        lazy.call(_CAL, "load", self)

    @property
    def calibrated(self):
        return self.factor is not None

    def set_calibration(self, factor, cal_id, offset=None):
        """Use and save factor (counts per gram), cal_id and offset (counts, if given)."""
        lazy.call(_CAL, "put", self, factor, cal_id, offset)

    # --- reading -------------------------------------------------------------------------

    async def counts(self):
        """One filtered reading: median of N raw reads, then a moving average."""
        s = self._samples
        n = len(s)
        ready = self.ready
        for i in range(n):
            if ready is None:
                await asyncio.sleep_ms(0)
            else:
                start = time.ticks_ms()
                # HX711 converts at 10 or 80 SPS: wait here, not inside read_raw, so the
                # loop runs.
                while not ready() and time.ticks_diff(time.ticks_ms(), start) < _READY_TIMEOUT_MS:
                    await asyncio.sleep_ms(_READY_POLL_MS)
            v = self.source.read_raw()
            # Insertion sort in place: the buffer is preallocated, nothing is allocated.
            j = i
            while j > 0 and s[j - 1] > v:
                s[j] = s[j - 1]
                j -= 1
            s[j] = v
        v = s[n // 2]
        ring = self._ring
        if self._ring_len and abs(v - self._ring_sum // self._ring_len) <= self._step:
            if self._ring_len < len(ring):
                self._ring_len += 1
            else:
                self._ring_sum -= ring[self._ring_pos]
            ring[self._ring_pos] = v
            self._ring_sum += v
            self._ring_pos = (self._ring_pos + 1) % len(ring)
        else:
            # First reading, or the load changed by more than step_g: restart the average
            # so a new bag shows at once instead of creeping in over N readings.
            ring[0] = v
            self._ring_len = 1
            self._ring_pos = 1 % len(ring)
            self._ring_sum = v
        return self._ring_sum // self._ring_len

    async def stable_counts(self, timeout_ms=5000):
        """Filtered counts once stable_count readings in a row stay within the tolerance."""
        start = time.ticks_ms()
        ref = c = await self.counts()
        run = 1
        while run < self.stable_count:
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                raise ScaleError(_UNSTABLE, timeout_ms)
            c = await self.counts()
            if abs(c - ref) <= self._tolerance:
                run += 1
            else:
                ref = c
                run = 1
        return c

    async def stable_grams(self, timeout_ms=5000):
        """The accepted weight in whole grams; ScaleError if unstable, over or under range."""
        if self.factor is None:
            raise ScaleError(_NOT_CALIBRATED)
        g = int(round((await self.stable_counts(timeout_ms) - self.offset) / self.factor))
        if g > self.capacity_g:
            raise ScaleError(_OVERLOAD, g)
        if g < -self.tolerance_g:
            # Reads below zero: the platform was tared with a load on it, or lifted.
            raise ScaleError(_UNDERLOAD, g)
        return g
