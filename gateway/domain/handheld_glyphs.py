"""16x16 bitmaps of the handheld's Chinese characters, from WenQuanYi Micro Hei (Apache License
2.0; Debian fonts-wqy-microhei). The bundle's lang/font.bin holds the screens' own glyphs
(devkit/glyphs.py); the config carries those of sellers' and couriers' names
(gateway/services/device_config.py), so no handheld ever holds the whole font. Both are read by
firmware/drivers/zh_text.py.

A font file: u16 count, the u16 code points sorted, then 32 bytes a glyph (16 rows of 2 bytes,
MONO_HLSB: the first byte's top bit is the row's leftmost pixel); little-endian.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gateway.domain.fonts import CJK_FONT_PATHS, FontMissing

GLYPH = 16  # pixels square: 4 lines of Chinese on the 64-row OLED
GLYPH_BYTES = GLYPH * GLYPH // 8
# Rows the outline is moved up: WenQuanYi Micro Hei at 16 px draws ideographs in rows 1-16.
BASELINE_SHIFT = -1


@cache
def _font() -> ImageFont.FreeTypeFont:
    for path in CJK_FONT_PATHS:
        if path and Path(path).exists():
            return ImageFont.truetype(path, GLYPH, index=0)
    raise FontMissing(
        "no CJK font for the handheld's Chinese screens: install Debian package "
        "fonts-wqy-microhei (apt-get install -y fonts-wqy-microhei) or set BAGSCAN_CJK_FONT "
        "to a .ttf/.ttc file"
    )


def is_wide(char: str) -> bool:
    """True for what the handheld draws from a font file: all but printable ASCII, which its
    panel's own 8x8 font draws."""
    return ord(char) > 0x7E


@cache
def glyph_bitmap(char: str) -> bytes:
    """The 32-byte 16x16 MONO_HLSB bitmap of one character."""
    image = Image.new("L", (GLYPH, GLYPH), 0)
    ImageDraw.Draw(image).text((0, BASELINE_SHIFT), char, font=_font(), fill=255)
    return image.point(lambda v: 255 if v >= 128 else 0).convert("1").tobytes()


def font_file(chars: set[str]) -> bytes:
    """A font file of the wide characters among chars (Basic Multilingual Plane only: a
    character beyond it is left out and the handheld draws a box for it)."""
    codes = sorted({ord(c) for c in chars if is_wide(c) and ord(c) <= 0xFFFF})
    return struct.pack(f"<H{len(codes)}H", len(codes), *codes) + b"".join(
        glyph_bitmap(chr(c)) for c in codes
    )
