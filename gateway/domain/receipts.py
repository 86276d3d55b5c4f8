"""Handover receipts (交接单): the driver's signature, three verifiable copies, the A4 PDF.

The driver signs on the handheld: HMAC-SHA256, keyed by the driver's key (unlocked there by
the PIN), over `handover_message(fields)`. The encoding is kept simple enough to rebuild in
MicroPython with str.replace, "|".join and hashlib.sha256 (MicroPython has no hmac module;
HMAC is two sha256 passes, RFC 2104). Each of the three copies carries a verification URL
whose token is an HMAC by the gateway's secret over the receipt and the copy's name.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass, replace
from datetime import date, datetime
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import qrcode
import qrcode.image.svg
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from gateway.domain.fonts import cjk_font
from gateway.domain.labels import wrap

# The manual: "一式三份" - seller and driver keep one each for audit; the third is the audit copy.
COPIES = ("seller", "driver", "audit")
COPY_NAMES = {
    "seller": "商家联 Seller copy",
    "driver": "司机联 Driver copy",
    "audit": "稽核联 Audit copy",
}

# Bump when the canonical encoding changes; old receipts keep verifying under their version.
MESSAGE_VERSION = "bagscan-handover-v1"
TOKEN_HEX_CHARS = 32  # 128 bits: enough against forgery, short enough for a small QR code


@dataclass(frozen=True)
class HandoverFields:
    """What the receipt certifies (manual: pickup date, seller, number of bags, driver)."""

    pickup_date: date  # in the seller's zone
    seller_id: str
    seller_name: str
    bag_numbers: tuple[str, ...]
    driver_id: str
    driver_name: str

    @property
    def bag_count(self) -> int:
        return len(self.bag_numbers)


@dataclass(frozen=True)
class Receipt:
    fields: HandoverFields
    driver_signature: str  # hex HMAC-SHA256 from the handheld
    # Bags of the signed list that were not handed over, as (bag number, reason): the driver
    # signed the whole list, the gateway took only the seller's own bags ready for pickup.
    refused: tuple[tuple[str, str], ...] = ()
    # The legal pickup time as printed (pickup_time_text): not signed, it is the drivers' scans
    # of the bags handed over (docs/domain.md); None where they are not looked up.
    pickup_time: str | None = None

    @property
    def handed_over(self) -> tuple[str, ...]:
        """The bags that went with the handover: the signed list less the refused ones."""
        refused = {bag for bag, _ in self.refused}
        return tuple(b for b in dict.fromkeys(self.fields.bag_numbers) if b not in refused)

    @property
    def bag_count_text(self) -> str:
        """The number of bags printed: those handed over, and when the gateway refused some of
        the list, how many the driver signed for and how many were refused."""
        count = str(len(self.handed_over))
        if not self.refused:
            return count
        return f"{count} (签收 signed {self.fields.bag_count}, 未交接 refused {len(self.refused)})"

    @property
    def receipt_id(self) -> str:
        """A short stable id for URLs: the first 16 hex of sha256 over the signed message."""
        return hashlib.sha256(handover_message(self.fields)).hexdigest()[:16]


def pickup_time_text(first: datetime, last: datetime, zone: ZoneInfo) -> str:
    """The pickup time as printed, in `zone` and named by its offset: one time, or the first
    and last scan when they differ by the minute ("2026-12-06 10:02 – 10:40 (UTC+08:00)")."""
    a, b = first.astimezone(zone), last.astimezone(zone)
    text = a.strftime("%Y-%m-%d %H:%M")
    if b.strftime("%Y-%m-%d %H:%M") != text:
        text += " – " + b.strftime("%H:%M" if a.date() == b.date() else "%Y-%m-%d %H:%M")
    offset = a.strftime("%z")
    return f"{text} (UTC{offset[:3]}:{offset[3:]})"


def _escape(value: str) -> str:
    # Backslash first, then the two separators: no field can forge a boundary.
    return value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")


def handover_message(fields: HandoverFields) -> bytes:
    """The canonical bytes the driver signs.

    UTF-8 of, joined by "|": MESSAGE_VERSION, pickup date (YYYY-MM-DD), seller id, seller
    name, number of bags, the bag numbers sorted and joined by ",", driver id, driver name.
    In every text field "\\" becomes "\\\\", "|" becomes "\\|" and "," becomes "\\,".
    """
    parts = (
        MESSAGE_VERSION,
        fields.pickup_date.isoformat(),
        _escape(fields.seller_id),
        _escape(fields.seller_name),
        str(fields.bag_count),
        ",".join(_escape(b) for b in sorted(fields.bag_numbers)),
        _escape(fields.driver_id),
        _escape(fields.driver_name),
    )
    return "|".join(parts).encode("utf-8")


def sign_handover(fields: HandoverFields, driver_key: bytes) -> str:
    """What the handheld computes (for tests and the simulator): hex HMAC-SHA256."""
    return hmac.new(driver_key, handover_message(fields), hashlib.sha256).hexdigest()


def verify_driver_signature(fields: HandoverFields, signature: str, driver_key: bytes) -> bool:
    return hmac.compare_digest(sign_handover(fields, driver_key), signature.lower())


def copy_token(receipt: Receipt, copy: str, secret: bytes) -> str:
    """The gateway's token for one copy: HMAC over the receipt, its signature and the copy."""
    if copy not in COPIES:
        raise ValueError(f"copy must be one of {COPIES}, not {copy!r}")
    message = b"|".join(
        (handover_message(receipt.fields), receipt.driver_signature.encode(), copy.encode())
    )
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def verify(receipt: Receipt, copy: str, token: str, secret: bytes) -> bool:
    """True when `token` was issued for exactly this receipt and copy."""
    if copy not in COPIES:
        return False
    return hmac.compare_digest(copy_token(receipt, copy, secret), token)


def verification_url(receipt: Receipt, copy: str, secret: bytes, base_url: str) -> str:
    """`{base_url}/receipts/{id}/{copy}?t={token}`: what each copy's QR code holds."""
    token = copy_token(receipt, copy, secret)
    path = f"/receipts/{quote(receipt.receipt_id)}/{quote(copy)}"
    return f"{base_url.rstrip('/')}{path}?{urlencode({'t': token})}"


def _qr(url: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(url)
    qr.make(fit=True)
    return qr


def qr_png(url: str) -> bytes:
    out = io.BytesIO()
    _qr(url).make_image().save(out)  # PIL image factory (pillow)
    return out.getvalue()


def qr_svg(url: str) -> bytes:
    out = io.BytesIO()
    _qr(url).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(out)
    return out.getvalue()


def qr_matrix(url: str) -> list[list[bool]]:
    """The QR modules (quiet zone included); the PDF draws them as vector squares."""
    return _qr(url).get_matrix()


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    matrix = qr_matrix(url)
    cell = size / len(matrix)
    for row, cells in enumerate(matrix):
        for col, dark in enumerate(cells):
            if dark:
                canvas.rect(x + col * cell, y + size - (row + 1) * cell, cell, cell, 0, 1)


def _draw_copy(
    canvas: Canvas, receipt: Receipt, copy: str, url: str, top: float, height: float
) -> None:
    width = A4[0]
    margin = 12 * mm
    qr_size = 38 * mm
    font = cjk_font()
    f = receipt.fields
    y = top - margin
    canvas.setFont(font, 14)
    canvas.drawString(margin, y - 14, "交接单 Handover receipt")
    canvas.setFont(font, 10)
    canvas.drawRightString(width - margin, y - 12, COPY_NAMES[copy])
    y -= 14 + 6 * mm

    text_width = width - 2 * margin - qr_size - 6 * mm
    rows = (
        ("揽收日期 Pickup date", f.pickup_date.isoformat()),
        *((("揽收时间 Pickup time", receipt.pickup_time),) if receipt.pickup_time else ()),
        ("揽收商家 Seller", f"{f.seller_name} ({f.seller_id})"),
        ("揽收大包数 Bags", receipt.bag_count_text),
        ("司机 Driver", f"{f.driver_name} ({f.driver_id})"),
        ("司机签名 Driver signature", receipt.driver_signature),
    )
    size, lead = 9.5, 12.0
    for label, value in rows:
        canvas.setFont(font, size)
        canvas.drawString(margin, y - size, label)
        for line in wrap(value, font, size, text_width - 48 * mm):
            y -= lead
            canvas.drawString(margin + 48 * mm, y + lead - size, line)
        y -= 2
    bottom = top - height + margin
    canvas.setFont(font, 8)
    lines = wrap("大包号 Bag numbers: " + ", ".join(receipt.handed_over), font, 8, text_width)
    if receipt.refused:
        text = "; ".join(f"{bag} ({why})" for bag, why in receipt.refused)
        lines += wrap("未交接 Refused: " + text, font, 8, text_width)
    room = max(int((y - bottom - 12) // 10), 1)
    if len(lines) > room:  # the full list is behind the QR code
        lines = lines[: room - 1] + [
            f"… {len(receipt.handed_over)} bags in all: scan the QR code for the list"
        ]
    for line in lines:
        y -= 10
        canvas.drawString(margin, y, line)

    _draw_qr(canvas, url, width - margin - qr_size, top - margin - 8 * mm - qr_size, qr_size)
    # The URL in plain Latin type on the copy's last line, for a reader without a camera.
    canvas.setFont("Helvetica", 6.5)
    canvas.drawRightString(width - margin, bottom, url)


def receipt_pdf(receipt: Receipt, secret: bytes, base_url: str) -> bytes:
    """The printable receipt: one A4 page, the three copies one above the other, cut lines."""
    width, height = A4
    third = height / 3
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4)
    canvas.setTitle(f"handover receipt {receipt.receipt_id}")
    for i, copy in enumerate(COPIES):
        top = height - i * third
        url = verification_url(receipt, copy, secret, base_url)
        _draw_copy(canvas, receipt, copy, url, top, third)
        if i:
            canvas.setDash(3, 3)
            canvas.setLineWidth(0.5)
            canvas.line(0, top, width, top)
            canvas.setDash()
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def altered(receipt: Receipt, **changes: object) -> Receipt:
    """A copy of `receipt` with some handover fields changed (for checks and tests)."""
    return replace(receipt, fields=replace(receipt.fields, **changes))
