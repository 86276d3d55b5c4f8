"""HX711 24-bit load-cell ADC, bit-banged over two pin callables (Avia datasheet). Power
down and up are drivers/hx711_power.py, loaded only while used."""

import time
from micropython import const

# Datasheet "Serial Interface": 24 data pulses, then 1 more selects channel A, gain 128
# for the next conversion (2 more: B/32, 3 more: A/64).
_DATA_BITS = const(24)
_GAIN_128_EXTRA = const(1)
_SIGN_BIT = const(0x800000)
_FULL_SCALE = const(0x1000000)


class HX711:
    """Channel A, gain 128.

    dout() returns the DOUT level; sck(v) drives PD_SCK. A PD_SCK high that lasts over
    60 us powers the chip down mid-read, so the pulse train runs between disable_irq()
    and enable_irq(state) (pass machine.disable_irq / machine.enable_irq on the ESP32).
    """

    def __init__(self, dout, sck, disable_irq=None, enable_irq=None):
        self.dout = dout
        self.sck = sck
        # Without interrupt control (the simulated board) the pulse train just runs.
        self.disable_irq = disable_irq or (lambda: 0)
        self.enable_irq = enable_irq or (lambda state: None)
        sck(0)

    def ready(self):
        # DOUT low means a conversion is waiting (datasheet: "data is ready for retrieval").
        return not self.dout()

    def read_raw(self, timeout_ms=500):
        """One conversion as a signed 24-bit count; OSError if DOUT never goes low."""
        dout = self.dout
        start = time.ticks_ms()
        while dout():
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                raise OSError("HX711 not ready")  # DOUT stayed high for timeout_ms
            time.sleep_ms(1)
        sck = self.sck
        value = 0
        state = self.disable_irq()
        try:
            for _ in range(_DATA_BITS):
                sck(1)
                sck(0)
                # Bit is valid 0.1 us after the rising edge and held until the next one.
                value = (value << 1) | dout()
            for _ in range(_GAIN_128_EXTRA):
                sck(1)
                sck(0)
        finally:
            self.enable_irq(state)
        if value & _SIGN_BIT:
            value -= _FULL_SCALE
        return value
