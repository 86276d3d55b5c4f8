"""HX711 power down and up (Avia datasheet, "Power down"). The functions take the HX711
driver h; load this module for the call (lazy.call), so a scale that stays on never holds it."""

import time
from micropython import const

# PD_SCK high for more than 60 us powers the chip down; hold it well past that.
_POWER_DOWN_US = const(100)


def down(h):
    h.sck(0)
    h.sck(1)
    time.sleep_us(_POWER_DOWN_US)


def up(h):
    # The chip resets to channel A, gain 128; first data after the 400 ms settling time.
    h.sck(0)
