"""Bag label PDFs: 10x10 cm for Milkrun, 10x15 cm for paid pickup (docs/domain.md, "Bag labels")."""

from __future__ import annotations

import io

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from gateway.domain.deadlines import MILKRUN, PAID
from gateway.domain.fonts import cjk_font

LABEL_SIZES = {MILKRUN: (100 * mm, 100 * mm), PAID: (100 * mm, 150 * mm)}
SERVICE_NAMES = {MILKRUN: "Milkrun 免费揽收", PAID: "付费揽收 Paid pickup"}

# The manual: own-drawn labels must put these words above the barcode, so the driver
# scans the right code.
SCAN_HINT = "揽收扫描条码"

MARGIN = 5 * mm
# Narrowest bar a handheld laser reads reliably from a tie tag (about 10 mil); widest we
# bother with: wider bars only make the code longer than the label.
MIN_BAR = 0.25 * mm
MAX_BAR = 0.5 * mm
BIG_TEXT = "Helvetica-Bold"


def bag_barcode(bag_no: str, max_width: float, bar_height: float) -> Code128:
    """The Code 128 widget for `bag_no`, with bars as wide as fit in `max_width` (points)."""
    if not bag_no or not bag_no.isascii() or not bag_no.isprintable():
        raise ValueError(f"bag number {bag_no!r} must be printable ASCII for Code 128")
    probe = Code128(bag_no, barWidth=1, humanReadable=False)  # width in modules, quiet zones in
    bar = min(MAX_BAR, max_width / probe.width)
    if bar < MIN_BAR:
        raise ValueError(f"bag number {bag_no!r} is too long for a readable barcode on the label")
    return Code128(bag_no, barWidth=bar, barHeight=bar_height, humanReadable=False)


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break `text` into lines no wider than `width`.

    Per character, as CJK has no spaces; but a Latin word or number ("BG2026000123", "18")
    moves whole to the next line.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for ch in paragraph:
            if line and stringWidth(line + ch, font, size) > width:
                cut = line.rfind(" ")
                tail = line[cut + 1 :]
                if ch != " " and cut > 0 and tail.isascii() and len(tail) <= 24:
                    lines.append(line[:cut].rstrip())
                    line = tail + ch
                else:
                    lines.append(line)
                    line = "" if ch == " " else ch
            else:
                line += ch
        lines.append(line)
    return lines


def _fit_size(text: str, font: str, largest: float, width: float) -> float:
    size = largest
    while size > 8 and stringWidth(text, font, size) > width:
        size -= 1
    return size


def draw_bag_label(
    canvas: Canvas, bag_no: str, service: str, seller: str, pickup_address: str
) -> None:
    """Draw one label on the current page of `canvas`, sized by LABEL_SIZES[service]."""
    width, height = LABEL_SIZES[service]
    cjk = cjk_font()
    inner = width - 2 * MARGIN
    tall = service == PAID  # 10x15 cm: more room for the barcode and the address
    y = height - MARGIN

    canvas.setFont(cjk, 9)
    y -= 9
    canvas.drawString(MARGIN, y, SERVICE_NAMES[service])

    y -= 6 * mm
    canvas.setFont(cjk, 12)
    canvas.drawCentredString(width / 2, y, SCAN_HINT)

    barcode = bag_barcode(bag_no, inner, (30 if tall else 22) * mm)
    y -= 2 * mm + barcode.height
    barcode.drawOn(canvas, (width - barcode.width) / 2, y)

    size = _fit_size(bag_no, BIG_TEXT, 26 if tall else 22, inner)
    y -= 2 * mm + size
    canvas.setFont(BIG_TEXT, size)
    canvas.drawCentredString(width / 2, y, bag_no)

    y -= 4 * mm
    canvas.setLineWidth(0.5)
    canvas.line(MARGIN, y, width - MARGIN, y)

    text_size = 10 if tall else 9
    lead = text_size * 1.25
    canvas.setFont(cjk, text_size)
    for line in wrap(f"商家 Seller: {seller}", cjk, text_size, inner):
        y -= lead
        canvas.drawString(MARGIN, y, line)
    lines = wrap(f"揽收地址 Pickup: {pickup_address}", cjk, text_size, inner)
    room = int((y - MARGIN) // lead)
    if len(lines) > room:  # never print over the edge; the system holds the full address
        lines = lines[: max(room, 0)]
        if lines:
            lines[-1] = lines[-1][:-1] + "…"
    for line in lines:
        y -= lead
        canvas.drawString(MARGIN, y, line)


def bag_label_pdf(bag_no: str, service: str, seller: str, pickup_address: str) -> bytes:
    """A one-page PDF label for the bag, page size 10x10 cm (Milkrun) or 10x15 cm (paid)."""
    return bag_labels_pdf([(bag_no, service, seller, pickup_address)])


def bag_labels_pdf(labels: list[tuple[str, str, str, str]]) -> bytes:
    """One PDF, one page per (bag_no, service, seller, pickup_address), each page the size of
    its bag's label: a warehouse prints the bags it closed in one go (issue 17)."""
    if not labels:
        raise ValueError("no bags to print labels for")
    for bag_no, service, _seller, _address in labels:
        if service not in LABEL_SIZES:
            raise ValueError(
                f"bag {bag_no}: unknown pickup service {service!r}; use one of {sorted(LABEL_SIZES)}"
            )
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=LABEL_SIZES[labels[0][1]])
    canvas.setTitle(
        f"bag label {labels[0][0]}" if len(labels) == 1 else f"{len(labels)} bag labels"
    )
    for bag_no, service, seller, address in labels:
        canvas.setPageSize(LABEL_SIZES[service])
        draw_bag_label(canvas, bag_no, service, seller, address)
        canvas.showPage()
    canvas.save()
    return out.getvalue()
