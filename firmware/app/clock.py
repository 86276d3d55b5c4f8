# Time on the handheld. Every tick read goes through ticks() so that tests can start the
# device just before the 2^30 ms wrap of time.ticks_ms() (BAGSCAN_TICKS_START on the host).
import time

from micropython import const

# MicroPython ports count seconds from 2000-01-01 (ESP32) or 1970-01-01 (unix).
_EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0
# China time (docs/domain.md, "Time zone"): the pickup date on a handover receipt is a local date.
_SELLER_ZONE_S = const(8 * 3600)
# time.ticks_ms() wraps at 2^30 on the ESP32 (wire_schema.TICKS_PERIOD) but at 2^62 on the 64-bit
# unix port: ticks() wraps at 2^30 everywhere, so records look the same on both.
_TICKS_MASK = const(0x3FFFFFFF)
_tick_offset = 0
_wall_correction = 0
synced = False  # True once the gateway told us its time


def start_ticks_at(value):
    """Make ticks() read value now (tests: start just before the 2^30 ms wrap)."""
    global _tick_offset
    _tick_offset = value - time.ticks_diff(time.ticks_ms(), 0)


def ticks():
    """Milliseconds, wrapping at 2^30 (the gateway compares them across the wrap)."""
    # ticks_ms() as a plain int, modulo the port's period (2^30 on the ESP32, 2^62 on unix).
    return (time.ticks_diff(time.ticks_ms(), 0) + _tick_offset) & _TICKS_MASK


def wall():
    """Seconds since 1970 UTC, as well as we know them (see synced)."""
    return int(time.time()) + _EPOCH_SHIFT + _wall_correction


def sync(epoch):
    """Adopt the gateway's time (epoch seconds); the clock counts as synced from now on."""
    global _wall_correction, synced
    _wall_correction = epoch - (int(time.time()) + _EPOCH_SHIFT)
    synced = True


def local_time(epoch=None):
    """time.gmtime's tuple in the seller's zone (UTC+8) for a wall time (default: now)."""
    return time.gmtime((wall() if epoch is None else epoch) + _SELLER_ZONE_S - _EPOCH_SHIFT)


def local_date(epoch=None):
    """YYYY-MM-DD in the seller's zone (UTC+8) for a wall time (default: now)."""
    t = local_time(epoch)
    return "%04d-%02d-%02d" % (t[0], t[1], t[2])
