"""The ESP32 handheld: buses, pins and drivers built from /pinmap.json (hw/pinmap.json)."""

import asyncio
import json
import os
import time

import machine
import network
from machine import ADC, I2C, PWM, UART, Pin
from micropython import const

from drivers.buzzer import KINDS, Buzzer
from drivers.gm65 import GM65
from drivers.hx711 import HX711
from drivers.keys import Keys
from drivers.scale import Scale
from drivers.ssd1306 import SSD1306, Display

PINMAP = "/pinmap.json"
STORAGE = "/data"
LED_MODES = ("off", "on", "blink")
_BLINK_MS = const(500)
_WIFI_TIMEOUT_MS = const(15000)
_WIFI_POLL_MS = const(200)
_ADC_SAMPLES = const(8)
_UART_RXBUF = const(512)  # two max-length codes plus replies while the loop is busy
_BUZZER_IDLE_HZ = const(2000)


def _pin(pm, group, name):
    return pm[group][name]["gpio"]


def _credentials(net):
    if isinstance(net, dict):
        return net["ssid"], net.get("password", "")
    return net[0], net[1]


class Board:
    """Everything the app touches on the real device; hal/sim mirrors these names."""

    def __init__(self, pinmap=PINMAP, storage=STORAGE):
        with open(pinmap) as f:
            pm = json.load(f)
        self.storage = storage
        self.state_provider = None  # the app sets it; the simulator's control channel reads it
        try:
            os.mkdir(storage)
        except OSError:
            pass  # exists already

        self.uart = UART(
            pm["scanner"]["uart"],
            baudrate=pm["scanner"]["baud"],
            tx=_pin(pm, "scanner", "tx"),
            rx=_pin(pm, "scanner", "rx"),
            rxbuf=_UART_RXBUF,
        )
        self.scanner = GM65(asyncio.StreamReader(self.uart), write=self.uart.write)

        self.hx711 = HX711(
            Pin(_pin(pm, "hx711", "dout"), Pin.IN),
            Pin(_pin(pm, "hx711", "sck"), Pin.OUT, value=0),
            machine.disable_irq,
            machine.enable_irq,
        )
        self.scale = Scale(self.hx711, storage + "/scale.json")

        self.i2c = I2C(
            pm["i2c"]["id"],
            sda=Pin(_pin(pm, "i2c", "sda")),
            scl=Pin(_pin(pm, "i2c", "scl")),
            freq=pm["i2c"]["freq"],
        )
        self.display = Display(SSD1306(self.i2c, addr=pm["i2c"]["oled_addr"]))

        self.buzzer = Buzzer(PWM(Pin(_pin(pm, "buzzer", "pwm")), freq=_BUZZER_IDLE_HZ, duty_u16=0))
        self._beep_task = None
        self._led = Pin(_pin(pm, "led", "pin"), Pin.OUT, value=0)
        self._blink_task = None
        self.led_mode = "off"

        keys = {}
        for name, spec in pm["keys"].items():
            # GPIO 34-39 have no internal pull-up: the map says "external" for those.
            if spec.get("pull") == "up":
                keys[name] = Pin(spec["gpio"], Pin.IN, Pin.PULL_UP)
            else:
                keys[name] = Pin(spec["gpio"], Pin.IN)
        self.keys = Keys(keys, active_low=True)

        self._adc = ADC(Pin(_pin(pm, "battery", "adc")), atten=ADC.ATTN_11DB)
        self._r_top = pm["battery"]["r_top"]
        self._r_bottom = pm["battery"]["r_bottom"]

        self.wlan = network.WLAN(network.STA_IF)
        self._wifi_failed = tuple(
            getattr(network, s)
            for s in ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND", "STAT_CONNECT_FAIL")
            if hasattr(network, s)
        )

    async def start(self):
        """Nothing to serve on the device (the simulator starts its control channel here)."""

    # --- user feedback -------------------------------------------------------------------

    def beep(self, kind):
        """Start a beep pattern and return at once; a new beep cuts the previous one."""
        if kind not in KINDS:
            raise ValueError("unknown beep %r" % kind)
        if self._beep_task is not None:
            self._beep_task.cancel()
        self._beep_task = asyncio.create_task(self.buzzer.play(kind))

    def set_led(self, mode):
        if mode not in LED_MODES:
            raise ValueError("LED mode must be off, on or blink, not %r" % mode)
        if self._blink_task is not None:
            self._blink_task.cancel()
            self._blink_task = None
        if mode == "blink":
            self._blink_task = asyncio.create_task(self._blink())
        else:
            self._led(1 if mode == "on" else 0)
        self.led_mode = mode

    def report(self, beep=None, code=None):
        """Screen, beep and refusal code are already on the panel and the buzzer here."""

    async def _blink(self):
        led = self._led
        while True:
            led(not led())
            await asyncio.sleep_ms(_BLINK_MS)

    # --- power and network ----------------------------------------------------------------

    def battery_mv(self):
        """Battery voltage in mV through the divider (ADC1, 11 dB, factory-calibrated uV)."""
        total = 0
        for _ in range(_ADC_SAMPLES):
            total += self._adc.read_uv() // 1000
        mv = total // _ADC_SAMPLES
        return mv * (self._r_top + self._r_bottom) // self._r_bottom

    async def net_up(self, networks=None, timeout_ms=_WIFI_TIMEOUT_MS):
        """Join the first reachable network of [{"ssid", "password"}] or [(ssid, password)]."""
        wlan = self.wlan
        wlan.active(True)
        if wlan.isconnected():
            return True
        for net in networks or ():
            ssid, password = _credentials(net)
            try:
                wlan.connect(ssid, password)
            except OSError:
                continue
            start = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
                if wlan.isconnected():
                    return True
                if wlan.status() in self._wifi_failed:
                    break
                await asyncio.sleep_ms(_WIFI_POLL_MS)
            wlan.disconnect()
        return False
