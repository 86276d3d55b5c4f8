# The simulated handheld: the real drivers over simulated parts, driven from a control channel
# on 127.0.0.1 (docs/simulator.md). Same attributes as hal/esp32.Board.
import asyncio
import gc
import json
import os
import random
import time

import micropython
import vfs
from micropython import const

import lazy
from app import clock
from drivers.buzzer import Buzzer
from drivers.gm65 import GM65
from drivers.hx711 import HX711
from drivers.keys import Keys
from drivers.scale import Scale
from drivers.ssd1306 import SSD1306, Display

_KEY_NAMES = const(("ok", "cancel", "mode", "up", "down"))
_LED_MODES = const(("off", "on", "blink"))
# A 100 kg cell at 2 mV/V on a 3.3 V bridge, gain 128: about 28 counts per gram (hw/bom.csv).
_COUNTS_PER_GRAM = const(28)
_ZERO_COUNTS = const(120000)
_NOISE_COUNTS = const(8)  # +-0.3 g: what a shielded cable and a quiet supply give
_CONVERSION_MS = const(12)  # HX711 RATE pin high: 80 samples per second
_KEY_HOLD_MS = const(40)  # longer than the keys driver's 3 x 7 ms debounce
_KEY_GIVE_UP_MS = const(2000)  # no keys task is polling: stop holding
_MAX_LINE = const(512)
_SCREENSHOT = const("hal.sim_screenshot")  # a rare command: its code loaded only to run it


class _SimHX711Chip:
    """Two pins of an HX711 whose load cell carries `grams` (datasheet timing: DOUT low when a
    conversion is ready; each PD_SCK rising edge shifts out the next bit, MSB first; the 25th
    pulse selects channel A, gain 128)."""

    def __init__(self):
        self.grams = 0
        self._level = 0
        self._pulses = -1
        self._word = 0
        self._ready_at = time.ticks_ms()

    def dout(self):
        if self._pulses < 0:
            return 0 if time.ticks_diff(time.ticks_ms(), self._ready_at) >= 0 else 1
        if 1 <= self._pulses <= 24:
            return (self._word >> (24 - self._pulses)) & 1
        return 1

    def sck(self, level):
        if level and not self._level:
            if self._pulses < 0:
                # A new conversion: the load in counts, with the noise of a real cell.
                noise = random.getrandbits(5) % (2 * _NOISE_COUNTS + 1) - _NOISE_COUNTS
                counts = _ZERO_COUNTS + self.grams * _COUNTS_PER_GRAM + noise
                self._word = counts & 0xFFFFFF
                self._pulses = 0
            self._pulses += 1
            if self._pulses == 25:
                self._pulses = -1
                self._ready_at = time.ticks_add(time.ticks_ms(), _CONVERSION_MS)
        self._level = level


class _Feed:
    """A byte stream with readinto(), fed by the control channel: the scanner's UART."""

    def __init__(self):
        self._buf = bytearray()
        self._event = asyncio.Event()

    def put(self, data):
        self._buf.extend(data)
        self._event.set()

    async def readinto(self, buf):
        while not self._buf:
            self._event.clear()
            await self._event.wait()
        n = min(len(buf), len(self._buf))
        buf[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class Board:
    def __init__(self):
        self.storage = os.getenv("BAGSCAN_STATE_DIR") or "state"
        # clock.ticks() starts here, e.g. just before the 2^30 ms wrap (docs/simulator.md).
        start = os.getenv("BAGSCAN_TICKS_START")
        self.ticks_start = int(start) if start else None
        self.state_provider = None
        self._clients = []
        self.led_mode = "off"

        self._feed = _Feed()
        # A control-channel "scan" is one deliberate trigger, never a re-read of the same label,
        # so the same-code debounce of a continuous-mode scanner is off here.
        self.scanner = GM65(self._feed, debounce_ms=0)
        self._chip = _SimHX711Chip()
        self.scale = Scale(HX711(self._chip.dout, self._chip.sck), self.storage + "/scale.json")
        if not self.scale.calibrated:
            self.scale.set_calibration(_COUNTS_PER_GRAM, "sim-factory", _ZERO_COUNTS)
        # Each key's level (1: released), in _KEY_NAMES order. Its pin reads the array through
        # default arguments, not a closure over the board: a closure keeps a cell and a
        # closure object per key in the heap for good (~0.5 KB for five keys, 64-bit port).
        level = self._key_level = bytearray(b"\x01" * len(_KEY_NAMES))
        self._presses = []  # key names waiting to be pressed, oldest first
        self._presser = None  # the task pressing them
        pins = {}
        for i in range(len(_KEY_NAMES)):
            pins[_KEY_NAMES[i]] = lambda i=i, level=level: level[i]
        self.keys = Keys(pins)
        self.panel = SSD1306(self)  # the bus: writeto below
        self.display = Display(self.panel)
        self._buzzer = Buzzer(lambda freq: None)
        self._beep_task = None

    # The OLED's I2C bus: the frame buffer is the screen, nothing needs to go anywhere.
    def writeto(self, addr, buf):
        return 1

    writevto = writeto

    # --- outputs, as on the ESP32 board ------------------------------------------------

    def beep(self, kind):
        if self._beep_task is not None:
            self._beep_task.cancel()
        self._beep_task = asyncio.create_task(self._buzzer.play(kind))

    def set_led(self, mode):
        if mode not in _LED_MODES:
            raise ValueError("LED mode %s" % mode)
        if mode != self.led_mode:
            self.led_mode = mode
            self._send({"screen": self.display.lines, "led": mode})

    def report(self, beep=None, code=None):
        """One control-channel object for a screen change with its beep and refusal code."""
        display = self.display
        obj: dict = {"screen": display.lines}
        if display.text:  # what the panel shows in Chinese
            obj["text"] = display.text.lines
        if beep:
            obj["beep"] = beep
        if code:
            obj["code"] = code
        self._send(obj)

    async def net_up(self, networks=None):
        return True  # the host's network is up; the MQTT client copes with a missing broker

    def battery_mv(self):
        return 3900

    # --- the control channel ---------------------------------------------------------------

    async def start(self):
        port = int(os.getenv("BAGSCAN_CONTROL_PORT") or "0")
        if port:
            await asyncio.start_server(self._serve, "127.0.0.1", port)
            print("control channel on 127.0.0.1:%d" % port)

    def _send(self, obj):
        if not self._clients:
            return
        line = json.dumps(obj).encode() + b"\n"
        for writer in self._clients:
            writer.write(line)
            # drain() runs in the client's task; a stuck client only fills its own buffer

    async def _serve(self, reader, writer):
        self._clients.append(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                reply = self._command(line[:_MAX_LINE].decode().strip())
                if reply is not None:
                    writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, UnicodeError):
            pass
        finally:
            self._clients.remove(writer)
            writer.close()

    def _command(self, line):
        verb, _, arg = line.partition(" ")
        if verb == "scan" and arg:
            self._feed.put(arg.encode() + b"\r")
        elif verb == "weight":
            try:
                self._chip.grams = int(arg)
            except ValueError:
                return {"screen": self.display.lines, "error": "weight takes whole grams"}
        elif verb == "key" and arg in _KEY_NAMES:
            self._presses.append(arg)
            if self._presser is None or self._presser.done():
                self._presser = asyncio.create_task(self._press_all())
        elif verb == "wall":
            # The wall clock set to <epoch seconds>, as the gateway's time in a config message
            # sets it (docs/simulator.md): the manual's examples run at their own dates.
            try:
                clock.sync(int(arg))
            except ValueError:
                return {"screen": self.display.lines, "error": "wall takes epoch seconds"}
        elif verb == "state":
            state = self.state_provider() if self.state_provider else {}
            state["screen"] = self.display.lines
            state["led"] = self.led_mode
            return state
        elif verb == "mem":
            gc.collect()
            # The interned-name pools to the log: past 620 names the unix port adds a 7 KB
            # pool (docs/firmware.md), and no function returns the count.
            micropython.qstr_info()
            # Not the partition devkit/romfs_boot.py read into the heap: a board maps it.
            try:
                rom = len(vfs.rom_ioctl(2, 0)) + 96  # pyright: ignore - its bytes and object
            except AttributeError:  # no partition: not started by devkit/romfs_boot.py
                rom = 0
            return {"mem_alloc": gc.mem_alloc() - rom, "mem_free": gc.mem_free()}
        elif verb == "screenshot" and arg:
            lazy.call(_SCREENSHOT, "save", self.panel, arg)
            return {"screen": self.display.lines, "saved": arg}
        else:
            return {"screen": self.display.lines, "error": "unknown command: " + line[:40]}
        return None

    async def _press_all(self):
        # Presses one after another, each released as long as held: "key cancel" twice in
        # a row is two presses, never one long one. One task for the queue: a task per press
        # awaiting the one before kept every earlier press in the heap (a finished task keeps
        # its coroutine, and the coroutine its locals).
        # A finger holds the key until the debounced state shows it, and releases it the
        # same way: on a loaded host a fixed hold can fall between the keys task's samples.
        presses = self._presses
        while presses:
            name = presses.pop(0)
            await self._hold(name, 0, True)
            await self._hold(name, 1, False)

    async def _hold(self, name, level, pressed):
        self._key_level[_KEY_NAMES.index(name)] = level
        waited = 0
        while waited < _KEY_HOLD_MS or (
            self.keys.pressed(name) != pressed and waited < _KEY_GIVE_UP_MS
        ):
            await asyncio.sleep_ms(5)
            waited += 5
