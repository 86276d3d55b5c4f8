"""The CJK font that labels and receipts embed (WenQuanYi Micro Hei, Debian fonts-wqy-microhei)."""

from __future__ import annotations

import os
from functools import cache

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

CJK_FONT = "WenQuanYiMicroHei"
CJK_FONT_PATHS = (
    os.environ.get("BAGSCAN_CJK_FONT", ""),
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)


class FontMissing(RuntimeError):
    pass


@cache
def cjk_font() -> str:
    """Register the CJK TrueType font with reportlab once; its name for setFont().

    reportlab's built-in CID fonts are not embedded, so "揽收扫描条码" would depend on the
    viewer; a TTF subset is embedded in the PDF and prints the same everywhere.
    """
    for path in CJK_FONT_PATHS:
        if path and os.path.exists(path):
            pdfmetrics.registerFont(TTFont(CJK_FONT, path, subfontIndex=0))
            return CJK_FONT
    raise FontMissing(
        "no CJK font for labels and receipts: install Debian package fonts-wqy-microhei "
        "(apt-get install -y fonts-wqy-microhei) or set BAGSCAN_CJK_FONT to a .ttf/.ttc "
        f"file; looked in {[p for p in CJK_FONT_PATHS if p]}"
    )
