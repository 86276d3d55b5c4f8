"""Buzzer patterns: ok, warn and error told apart by pitch, length and count."""

import asyncio
from micropython import const

_DUTY_HALF = const(32768)  # square wave: loudest for a passive buzzer

# (frequency Hz, on ms, off ms, repeats). Distinct by ear without looking at the screen:
# ok is one short high beep, warn two medium, error three low and long.
PATTERNS = {
    "ok": (2700, 80, 0, 1),
    "warn": (1800, 180, 120, 2),
    "error": (500, 400, 150, 3),
}


class Buzzer:
    """Give a machine.PWM (freq()/duty_u16()) or a callable tone(freq_hz), 0 meaning off."""

    def __init__(self, out):
        self._out = out
        self._is_pwm = hasattr(out, "duty_u16")
        self.playing = None
        self.tone(0)

    def tone(self, freq):
        out = self._out
        if not self._is_pwm:
            out(freq)
        elif freq:
            out.freq(freq)
            out.duty_u16(_DUTY_HALF)
        else:
            out.duty_u16(0)

    async def play(self, kind):
        pattern = PATTERNS.get(kind)
        if pattern is None:
            raise ValueError("unknown beep %r" % kind)
        freq, on_ms, off_ms, repeats = pattern
        self.playing = kind
        try:
            for i in range(repeats):
                self.tone(freq)
                await asyncio.sleep_ms(on_ms)
                self.tone(0)
                if i < repeats - 1:
                    await asyncio.sleep_ms(off_ms)
        finally:
            # Also on cancel: a newer beep replaced this one, never leave the buzzer on.
            self.tone(0)
            self.playing = None
