"""The seller's copy at the door (issue 18): the QR code the real firmware draws in MicroPython
on the 128x64 frame buffer is what a phone reads (zbarimg here), and it names the receipt the
gateway stores for the handover (protocol/receipt.py)."""

import subprocess
from datetime import date
from pathlib import Path

import pytest
import qrcode
from PIL import Image

from devkit import glyphs
from gateway.domain.receipts import HandoverFields, Receipt, sign_handover
from protocol.receipt import QR_ALPHANUMERIC, door_text

FIELDS = HandoverFields(
    pickup_date=date(2026, 8, 8),
    seller_id="1000123",
    seller_name="深圳小商店",
    bag_numbers=("BS0000000123", "BS0000000124", "BS0000000125"),
    driver_id="D042",
    driver_name="王师傅",
)
RECEIPT = Receipt(FIELDS, sign_handover(FIELDS, bytes(range(32))))

BASE = "http://gw.example.cn:8000"
DOOR_LINES = ["HANDOVER", "3 bags", "2026", "08-08", "11:00", "UTC+8"]
# 2026-08-08 03:00 UTC: 11:00 in the seller's zone (docs/domain.md, "Time zone").
SIGNED_AT = 1786158000

DRAW = r"""
import framebuf
from app import clock, door_receipt
from drivers.ssd1306 import Display
from drivers.zh_text import ZhText
from hal import sim_screenshot


class Panel(framebuf.FrameBuffer):
    def __init__(self):
        self.width, self.height = 128, 64
        super().__init__(bytearray(128 * 8), 128, 64, framebuf.MONO_VLSB)

    def show(self):
        pass


class Board:
    display = Display(Panel())
    reported = []

    def report(self, beep=None, code=None):
        self.reported.append(beep)

    def beep(self, pattern):
        self.reported.append(pattern)


clock.sync(%(at)d)
board = Board()
handover = (%(bags)d, %(sig)r, %(receipt_id)r)
board.display.text = %(language)s
print(door_receipt.show(board, %(base)r, handover))
print("|".join(board.display.lines))
print(board.reported)
sim_screenshot.save(board.display.panel, "screen.pbm")
"""


def draw(run_mpy, tmp_path: Path, base: str, chinese=False) -> tuple[str, list[str], Path]:
    if chinese:
        glyphs.build(tmp_path)
    code = DRAW % {
        "language": 'ZhText("lang/text.bin", ["lang/font.bin"])' if chinese else "None",
        "at": SIGNED_AT,
        "receipt_id": RECEIPT.receipt_id,
        "bags": len(FIELDS.bag_numbers),
        "base": base,
        "sig": RECEIPT.driver_signature,
    }
    out = run_mpy(code).stdout.splitlines()
    assert out[2] == "['ok', 'ok']"  # reported and beeped like every accepted step
    return out[0], out[1].split("|"), tmp_path / "screen.pbm"


def read_qr(pbm: Path) -> list[str]:
    """What zbarimg reads from the screen, shown 4x as a phone's camera would see it large."""
    lines = pbm.read_text().split("\n")
    width, height = map(int, lines[1].split())
    pixels = "".join(lines[2:])
    image = Image.new("L", (width, height))
    # A lit OLED pixel is light: the code is dark modules on the lit quiet zone.
    image.putdata([255 if p == "1" else 0 for p in pixels[: width * height]])
    png = pbm.with_suffix(".png")
    image.resize((width * 4, height * 4), Image.NEAREST).save(png)
    proc = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=False
    )
    return proc.stdout.split()


@pytest.mark.parametrize("chinese", [False, True], ids=["en", "zh"])
def test_the_door_code_names_the_receipt_the_gateway_stores(run_mpy, tmp_path, chinese):
    shown, lines, pbm = draw(run_mpy, tmp_path, BASE, chinese)
    expected = door_text(BASE, RECEIPT.receipt_id, RECEIPT.driver_signature)
    assert shown == expected
    assert expected.startswith("HTTP://GW.EXAMPLE.CN:8000/R/" + RECEIPT.receipt_id.upper())
    assert read_qr(pbm) == [expected]
    # Beside the code: the number of bags and the pickup time, date, hours and minutes, zone
    # (issue 18 item 2).
    assert lines == DOOR_LINES


def test_the_longest_receipt_url_still_makes_a_code(run_mpy, tmp_path):
    base = "http://" + "g" * 34 + "/"  # MAX_BASE_URL once the slash is stripped
    shown, _, pbm = draw(run_mpy, tmp_path, base)
    assert shown == door_text(base, RECEIPT.receipt_id, RECEIPT.driver_signature)
    assert read_qr(pbm) == [shown]


READ_OUT = r"""
import framebuf
from hal import sim_screenshot


class Panel(framebuf.FrameBuffer):
    def __init__(self):
        self.width, self.height = 128, 64
        super().__init__(bytearray(128 * 8), 128, 64, framebuf.MONO_VLSB)


panel = Panel()
for i in range(4):
    panel.text(%(receipt_id)r[i * 4 : i * 4 + 4], 8, 12 + i * 10, 1)
sim_screenshot.save(panel, "read_out.pbm")
"""


def left_half(pbm: Path) -> list[str]:
    return [row[:64] for row in pbm.read_text().split("\n")[2:66]]


@pytest.mark.parametrize(
    "base", ["http://" + "g" * 35, "http://gw.example/bag_scan"], ids=["long", "_"]
)
def test_with_a_receipt_url_that_does_not_fit_the_screen_shows_the_receipt_id(
    run_mpy, tmp_path, base
):
    assert door_text(base, RECEIPT.receipt_id, RECEIPT.driver_signature) is None
    shown, lines, pbm = draw(run_mpy, tmp_path, base)
    assert shown == "None"
    assert lines == DOOR_LINES
    assert read_qr(pbm) == []
    # In the code's place, the receipt id to read out: four groups of four in the 8x8 font.
    run_mpy(READ_OUT % {"receipt_id": RECEIPT.receipt_id})
    assert left_half(pbm) == left_half(tmp_path / "read_out.pbm")


ENCODE = """
import framebuf
from app import door_receipt

frame = bytearray(128 * 8)
panel = framebuf.FrameBuffer(frame, 128, 64, framebuf.MONO_VLSB)
"""


@pytest.mark.parametrize(
    "text", ["A", "HELLO WORLD", door_text(BASE, "f" * 16, "0" * 64), "Z9 $%*+-./:" * 7]
)
def test_the_firmware_encoder_matches_a_reference_encoder(run_mpy, text):
    """The firmware's encoder module for module against the qrcode library, same version,
    level and mask."""
    code = ENCODE + (
        f"door_receipt.encode({text!r}, panel)\n"
        # A dark module is a pixel off, 2 pixels a module from (3, 3).
        "print(''.join('0' if panel.pixel(3 + c * 2, 3 + r * 2) else '1'"
        " for r in range(29) for c in range(29)))"
    )
    out = run_mpy(code).stdout.strip()
    ref = qrcode.QRCode(
        version=3, error_correction=qrcode.constants.ERROR_CORRECT_L, mask_pattern=0, border=0
    )
    ref.add_data(text, optimize=0)
    ref.make(fit=False)
    assert out == "".join("1" if b else "0" for row in ref.get_matrix() for b in row)


def test_the_encoder_and_the_door_code_agree_on_the_alphanumeric_set(run_mpy):
    code = ENCODE + (
        "for c in range(128):\n"
        "    try:\n        door_receipt.encode(chr(c), panel)\n        print(chr(c), end='')\n"
        "    except ValueError:\n        pass\n"
    )
    assert run_mpy(code).stdout == "".join(sorted(QR_ALPHANUMERIC))
    assert door_text("http://gw.example/bag_scan", "0", "0") is None  # "_" is not in it
    assert door_text("http://" + "g" * 34, "0", "0") is not None  # MAX_BASE_URL, 41
    assert door_text("http://" + "g" * 35, "0", "0") is None


def test_text_outside_the_alphanumeric_set_is_refused(run_mpy):
    out = run_mpy(
        ENCODE + "for t in ('lower', 'X' * 78, 'A_B', ''):\n"
        "    try:\n        door_receipt.encode(t, panel)\n        print('drawn')\n"
        "    except ValueError as e:\n        print('refused')\n"
        "print(max(frame) == 0)\n"  # nothing drawn
    ).stdout.split()
    assert out == ["refused"] * 4 + ["True"]
