"""Bag labels: page sizes, the Code 128 bag number as drawn, the embedded CJK font."""

import base64
import re
import shutil
import subprocess
import zlib

import pytest
from barcode.charsets.code128 import CODES, STOP  # python-barcode: an independent table

from gateway.domain import fonts
from gateway.domain.deadlines import MILKRUN, PAID
from gateway.domain.labels import SCAN_HINT, bag_barcode, bag_label_pdf, wrap

MM = 72 / 25.4
BAG_NO = "BG2026000123"
ADDRESS = "广东省深圳市南山区科技园南区高新南七道 18 号 3 栋 501 室"


def label(service: str, bag_no: str = BAG_NO, address: str = ADDRESS) -> bytes:
    return bag_label_pdf(bag_no, service, "深圳小商店 (1000123)", address)


def streams(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(dictionary, decoded data) of every stream object in the PDF."""
    found = []
    for m in re.finditer(rb"<<((?:(?!<<|>>).)*)>>\s*stream\r?\n", pdf, re.S):
        head, data = m.group(1), pdf[m.end() : pdf.index(b"endstream", m.end())]
        filters = re.search(rb"/Filter \[([^\]]*)\]", head)
        for name in filters.group(1).split() if filters else []:
            if name == b"/ASCII85Decode":
                data = base64.a85decode(data.strip().removesuffix(b"~>"))
            elif name == b"/FlateDecode":
                data = zlib.decompressobj().decompress(data)
        found.append((head, data))
    return found


def page_content(pdf: bytes) -> bytes:
    return b"".join(d for h, d in streams(pdf) if b"Length1" not in h and b"begincmap" not in d)


def mediaboxes(pdf: bytes) -> list[tuple[float, ...]]:
    return [tuple(map(float, m.split())) for m in re.findall(rb"/MediaBox \[([^\]]*)\]", pdf)]


def pdf_string(raw: bytes) -> bytes:
    """The bytes of a PDF literal string body (escapes resolved)."""
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x5C:  # backslash
            m = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
            if m:
                out.append(int(m.group(), 8))
                i += 1 + len(m.group())
                continue
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(
                raw[i + 1 : i + 2], raw[i + 1 : i + 2]
            )
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def texts_in_cjk_font(pdf: bytes) -> list[str]:
    """Every string drawn with the embedded CJK font, mapped back through its ToUnicode CMap."""
    cmap = next(d for h, d in streams(pdf) if b"begincmap" in d)
    to_unicode = {
        int(code, 16): chr(int(uni, 16))
        for code, uni in re.findall(rb"<([0-9A-F]{2})> <([0-9A-F]{4})>", cmap)
    }
    drawn = []
    for body in re.findall(rb"/F\d+\+0 [\d.]+ Tf.*?\(((?:\\.|[^\\)])*)\) Tj", page_content(pdf)):
        drawn.append("".join(to_unicode[b] for b in pdf_string(body)))
    return drawn


def decode_code128_bars(content: bytes) -> str:
    """Decode the Code 128 symbol from the bar rectangles drawn in a page's content."""
    bars = [
        (float(x), float(w))
        for x, w in re.findall(rb"n ([\d.]+) 0 ([\d.]+) [\d.]+ re f\*", content)
    ]
    bars.sort()
    module = min(w for _, w in bars)
    bits = ""
    for i, (x, w) in enumerate(bars):
        bits += "1" * round(w / module)
        if i + 1 < len(bars):
            bits += "0" * round((bars[i + 1][0] - x - w) / module)
    assert bits.endswith(STOP + "11"), "no stop pattern"
    values = [CODES.index(bits[i : i + 11]) for i in range(0, len(bits) - 13, 11)]
    start, *data, check = values
    assert check == (start + sum(i * v for i, v in enumerate(data, 1))) % 103, "bad check digit"
    charset, text = {103: "A", 104: "B", 105: "C"}[start], ""
    for v in data:
        if charset == "C":
            if v < 100:
                text += f"{v:02d}"
            else:
                charset = {100: "B", 101: "A"}[v]
        elif v == 99:
            charset = "C"
        elif (charset, v) in (("A", 100), ("B", 101)):
            charset = "B" if v == 100 else "A"
        elif charset == "B":
            assert v < 95, f"unexpected function code {v}"
            text += chr(v + 32)
        else:
            assert v < 96, f"unexpected function code {v}"
            text += chr(v + 32) if v < 64 else chr(v - 64)
    return text


@pytest.mark.parametrize(("service", "size_mm"), [(MILKRUN, (100, 100)), (PAID, (100, 150))])
def test_label_page_size(service, size_mm):
    (box,) = mediaboxes(label(service))
    assert box[:2] == (0, 0)
    assert box[2] / MM == pytest.approx(size_mm[0], abs=0.01)
    assert box[3] / MM == pytest.approx(size_mm[1], abs=0.01)


@pytest.mark.parametrize("service", [MILKRUN, PAID])
@pytest.mark.parametrize("bag_no", [BAG_NO, "2026000123", "BG-7", "YW20260808000001"])
def test_the_drawn_barcode_decodes_to_the_bag_number(service, bag_no):
    assert decode_code128_bars(page_content(label(service, bag_no))) == bag_no


def test_the_barcode_widget_encodes_the_bag_number():
    widget = bag_barcode(BAG_NO, 90 * MM, 20 * MM)
    assert widget.value == BAG_NO and widget.width <= 90 * MM
    assert widget.barWidth >= 0.25 * MM  # readable by a handheld


def test_the_scan_hint_is_drawn_in_an_embedded_cjk_font():
    pdf = label(MILKRUN)
    assert b"/FontFile2" in pdf and b"WenQuanYiMicroHei" in pdf
    drawn = texts_in_cjk_font(pdf)
    assert SCAN_HINT in drawn
    assert any("南山区" in text for text in drawn)  # the pickup address
    assert any("深圳小商店" in text for text in drawn)  # the seller


def test_the_scan_hint_sits_above_the_barcode():
    content = page_content(label(MILKRUN))
    hint_y = float(re.search(rb"1 0 0 1 [\d.]+ ([\d.]+) Tm /F\d\+0 12 Tf", content).group(1))
    barcode_top = float(re.search(rb"1 0 0 1 [\d.]+ ([\d.]+) cm\s*n", content).group(1)) + float(
        re.search(rb"n [\d.]+ 0 [\d.]+ ([\d.]+) re f\*", content).group(1)
    )
    assert hint_y > barcode_top


def test_the_bag_number_is_printed_in_big_text():
    content = page_content(label(MILKRUN))
    size = float(
        re.search(rb"/F\d+ ([\d.]+) Tf[^(]*\(" + BAG_NO.encode() + rb"\) Tj", content).group(1)
    )
    assert size >= 18


def test_a_long_address_stays_on_the_label():
    assert bag_label_pdf(BAG_NO, MILKRUN, "S", "很长的地址" * 80)  # no error, truncated


def test_cjk_text_wraps_per_character_and_keeps_numbers_whole():
    font = fonts.cjk_font()
    lines = wrap("揽收地址 " + "深圳" * 40 + " BG2026000123", font, 9, 80 * MM)
    assert all(len(line) > 0 for line in lines) and len(lines) > 1
    assert "BG2026000123" in lines[-1]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown pickup service"):
        bag_label_pdf(BAG_NO, "drone", "S", "A")
    with pytest.raises(ValueError, match="printable ASCII"):
        bag_label_pdf("大包1", MILKRUN, "S", "A")
    with pytest.raises(ValueError, match="too long"):
        bag_label_pdf("X" * 40, MILKRUN, "S", "A")


def test_a_missing_font_says_what_to_install(monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONT_PATHS", ("/nonexistent/font.ttc",))
    fonts.cjk_font.cache_clear()
    try:
        with pytest.raises(fonts.FontMissing, match="fonts-wqy-microhei"):
            fonts.cjk_font()
    finally:
        fonts.cjk_font.cache_clear()


@pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg")),
    reason="pdftoppm (poppler-utils) and zbarimg (zbar-tools) not installed",
)
@pytest.mark.parametrize("service", [MILKRUN, PAID])
def test_a_real_scanner_reads_the_printed_label(service, tmp_path):
    (tmp_path / "label.pdf").write_bytes(label(service))
    subprocess.run(["pdftoppm", "-r", "300", "-png", "label.pdf", "page"], cwd=tmp_path, check=True)
    (page,) = tmp_path.glob("page*.png")
    out = subprocess.run(["zbarimg", "-q", "--raw", page], capture_output=True, text=True)
    assert out.stdout.split() == [BAG_NO]
