"""GM65 / GM861 command frames: trigger and configuration. The functions take the GM65
driver g; load this module for the call (lazy.call), so a read-only scanner never holds it."""

import asyncio
import time
from micropython import const

# Command frame (GM65 manual, "Serial command"): 7E 00 <type> <len> <addr hi> <addr lo>
# <data...> <crc hi> <crc lo>, CRC-CCITT (XModem: poly 0x1021, init 0) over type..data.
_HEAD = const(0x7E)
_TYPE_WRITE = const(0x08)
_TYPE_SAVE = const(0x09)
# Zone bits (manual, "Zone bit list").
_ZONE_TRIGGER = const(0x0002)  # bit 0 = 1: start one read in command-triggered mode
_ZONE_OUTPUT = const(0x000D)  # bits 1-0 = 00: output on the serial (TTL-232) port
_CONFIG_GAP_MS = const(50)
# The module answers a frame at once (manual, "Serial command"); drivers/gm65.py looks for the
# reply only this long, so a scanned code starting with STX is not taken for one.
_REPLY_WINDOW_MS = const(500)


def crc_ccitt(data, crc=0):
    """CRC-16/XMODEM as the GM65 manual specifies for command frames."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(kind, addr, data):
    """A command frame: kind is the type byte, addr a zone address, data bytes."""
    buf = bytearray(8 + len(data))
    buf[0] = _HEAD
    buf[1] = 0
    buf[2] = kind
    buf[3] = len(data)
    buf[4] = addr >> 8
    buf[5] = addr & 0xFF
    buf[6 : 6 + len(data)] = data
    crc = crc_ccitt(memoryview(buf)[2 : 6 + len(data)])
    buf[-2] = crc >> 8
    buf[-1] = crc & 0xFF
    return bytes(buf)


def trigger_frame():
    return frame(_TYPE_WRITE, _ZONE_TRIGGER, b"\x01")


def serial_output_frame():
    return frame(_TYPE_WRITE, _ZONE_OUTPUT, b"\x00")


def save_frame():
    # Manual: "save to internal flash" is type 09, length 01, address 0000, data 00.
    return frame(_TYPE_SAVE, 0x0000, b"\x00")


def trigger(g):
    """Start one read (the module must be in command-triggered mode)."""
    _send(g, trigger_frame())


async def configure(g):
    """Output on the serial port, saved to the module's flash."""
    _send(g, serial_output_frame())
    await asyncio.sleep_ms(_CONFIG_GAP_MS)
    _send(g, save_frame())


def _send(g, data):
    if g.write is None:
        raise OSError("GM65: no write channel for command frames")
    g.write(data)
    g.reply_by = time.ticks_add(g.clock(), _REPLY_WINDOW_MS)
