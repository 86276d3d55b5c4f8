"""The handheld's Chinese, built on the host (docs/firmware.md, "Languages"): the screen texts'
catalog (firmware/lang/zh.txt) packed for lookup on flash, and the glyphs it needs
(gateway/domain/handheld_glyphs.py), written into the bundle's lang/ folder for
firmware/drivers/zh_text.py.

text.bin: u16 count, u16 offsets of the entries (from the end of the offsets), then the entries
"<English>\\t<Chinese>\\n" sorted by the English UTF-8 bytes; little-endian. A run of digits in
an English line is "#" in the catalog, and the Chinese takes the same numbers in order.
"""

from __future__ import annotations

import struct
from pathlib import Path

from devkit import ROOT
from gateway.domain.handheld_glyphs import font_file, is_wide

CATALOG = ROOT / "firmware" / "lang" / "zh.txt"
NUMBER = "#"  # a run of digits in a catalog key
ENTRY_MAX = 128  # bytes the handheld reads at a lookup (firmware/drivers/zh_text.py _ENTRY)


def catalog(path: Path = CATALOG) -> dict[str, str]:
    """English screen text -> Chinese, from the tab-separated catalog (// lines are comments)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("//"):
            continue
        english, sep, chinese = line.partition("\t")
        if not sep or not chinese or "\t" in chinese:
            raise ValueError(f"{path}:{n}: expected <English><TAB><Chinese>")
        if english in out:
            raise ValueError(f"{path}:{n}: {english!r} twice")
        if not english.isascii() or len(f"{english}\t{chinese}\n".encode()) > ENTRY_MAX:
            raise ValueError(f"{path}:{n}: English is ASCII, and a line at most {ENTRY_MAX} bytes")
        if any(ch.isdigit() for ch in english):
            raise ValueError(
                f"{path}:{n}: a number in the English is {NUMBER}, as the handheld looks it up"
            )
        if english.count(NUMBER) != chinese.count(NUMBER):
            raise ValueError(f"{path}:{n}: the Chinese must take the same numbers")
        out[english] = chinese
    return out


def text_bin(texts: dict[str, str]) -> bytes:
    entries = [
        f"{k}\t{v}\n".encode() for k, v in sorted(texts.items(), key=lambda kv: kv[0].encode())
    ]
    offsets, at = [], 0
    for e in entries:
        offsets.append(at)
        at += len(e)
    if at > 0xFFFF:
        raise ValueError("the catalog outgrew its 16-bit offsets")
    return struct.pack(f"<H{len(offsets)}H", len(offsets), *offsets) + b"".join(entries)


def wide_chars(texts: dict[str, str]) -> set[str]:
    """The characters of the Chinese texts the handheld draws from lang/font.bin."""
    return {ch for text in texts.values() for ch in text if is_wide(ch)}


def build(out: Path) -> None:
    """Write lang/text.bin and lang/font.bin of the zh catalog into a bundle folder."""
    texts = catalog()
    folder = out / "lang"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("text.bin", text_bin(texts)), ("font.bin", font_file(wide_chars(texts)))):
        dest = folder / name
        if not dest.exists() or dest.read_bytes() != data:
            tmp = dest.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(dest)
