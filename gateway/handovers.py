"""Handover receipts as stored: their three copies, PDF and verification (domain.receipts)."""

from sqlalchemy.orm import Session

from gateway import settings
from gateway.domain import receipts
from gateway.models import Handover
from gateway.models import Receipt as ReceiptRow


def receipt_of(row: ReceiptRow) -> receipts.Receipt:
    """The receipt exactly as signed, rebuilt from its frozen row."""
    return receipts.Receipt(
        receipts.HandoverFields(
            pickup_date=row.pickup_date,
            seller_id=row.seller_id,
            seller_name=row.seller_name,
            bag_numbers=tuple(row.bag_numbers),
            driver_id=row.driver_id,
            driver_name=row.driver_name,
        ),
        row.driver_signature,
    )


def base_url(session: Session) -> str:
    return str(settings.of(session)["PUBLIC_URL"])


def copies(session: Session, row: ReceiptRow) -> dict[str, str]:
    """copy name -> verification URL (what each copy's QR code holds)."""
    receipt = receipt_of(row)
    secret, base = settings.secret(session), base_url(session)
    return {c: receipts.verification_url(receipt, c, secret, base) for c in receipts.COPIES}


def pdf(session: Session, row: ReceiptRow) -> bytes:
    return receipts.receipt_pdf(receipt_of(row), settings.secret(session), base_url(session))


def verify(session: Session, row: ReceiptRow, copy: str, token: str) -> bool:
    """True when the token was issued for this copy of this receipt, as stored now.

    The row's id is the hash of its signed fields: a row altered in the database no longer
    matches its id, and its tokens no longer verify.
    """
    receipt = receipt_of(row)
    if receipt.receipt_id != row.id:
        return False
    return receipts.verify(receipt, copy, token, settings.secret(session))


def handover_json(session: Session, h: Handover) -> dict:
    row = h.receipt
    return {
        "id": h.id,
        "device_id": h.device_id,
        "device_handover_id": h.device_handover_id,
        "driver_id": h.driver_id,
        "seller_id": h.seller_id,
        "pickup_date": h.pickup_date.isoformat(),
        "bag_count": h.bag_count,
        "bags": list(h.bag_numbers),
        "signature": h.signature,
        "signature_ok": h.signature_ok,
        "at": h.at.isoformat(),
        "receipt": None
        if row is None
        else {
            "id": row.id,
            "seller_name": row.seller_name,
            "driver_name": row.driver_name,
            "issued_at": row.issued_at.isoformat(),
            "copies": copies(session, row),
            "pdf": f"/handovers/{h.id}/receipt.pdf",
        },
    }
