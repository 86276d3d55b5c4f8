"""Buzzer patterns: ok, warn and error told apart by pitch, length and count."""

import asyncio
from micropython import const

_DUTY_HALF = const(32768)  # square wave: loudest for a passive buzzer

# The beeps, and for each (frequency Hz, on ms, off ms, repeats). Distinct by ear without
# looking at the screen: ok is one short high beep, warn two medium, error three low and
# long. Tuples, not a dict: constants of the bytecode, nothing built at import.
KINDS = const(("ok", "warn", "error"))
_PATTERNS = const(((2700, 80, 0, 1), (1800, 180, 120, 2), (500, 400, 150, 3)))


class Buzzer:
    """Give a machine.PWM (freq()/duty_u16()) or a callable tone(freq_hz), 0 meaning off."""

    def __init__(self, out):
        self._out = out
        self._is_pwm = hasattr(out, "duty_u16")
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
        # ValueError for an unknown kind.
        freq, on_ms, off_ms, repeats = _PATTERNS[KINDS.index(kind)]
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
