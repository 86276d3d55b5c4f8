# Time on the handheld. Every tick read goes through ticks() so that tests can start the
# device just before the 2^30 ms wrap of time.ticks_ms() (BAGSCAN_TICKS_OFFSET on the host).
import time

# MicroPython ports count seconds from 2000-01-01 (ESP32) or 1970-01-01 (unix).
_EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0
_tick_offset = 0
_wall_correction = 0
synced = False  # True once the gateway told us its time


def set_tick_offset(ms):
    global _tick_offset
    _tick_offset = ms


def ticks():
    return time.ticks_add(time.ticks_ms(), _tick_offset)


def wall():
    """Seconds since 1970 UTC, as well as we know them (see synced)."""
    return int(time.time()) + _EPOCH_SHIFT + _wall_correction


def sync(server_epoch):
    """Adopt the gateway's time; the clock counts as synced from now on."""
    global _wall_correction, synced
    _wall_correction = server_epoch - (int(time.time()) + _EPOCH_SHIFT)
    synced = True
