"""Handovers as stored: the bags handed over and refused, the pickup time, and the receipt's
three copies, PDF and verification (domain.receipts)."""

from dataclasses import replace
from zoneinfo import ZoneInfo

from flask import has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import settings
from gateway.domain import receipts
from gateway.domain.deadlines import DEFAULT_TZ
from gateway.ingest import registry
from gateway.models import Bag, Disagreement, Handover
from gateway.models import Receipt as ReceiptRow


def handed_over(session: Session, handover: Handover) -> list[Bag]:
    """The bags that went with the handover (the registry links them, bags.handover_id): the
    signed list less the bags it refused."""
    return list(
        session.scalars(select(Bag).where(Bag.handover_id == handover.id).order_by(Bag.bag_no))
    )


def refused(session: Session, handover: Handover) -> list[dict]:
    """The bags of the signed list the gateway refused, each {bag, code, reason}: as printed on
    the receipt, or, for a handover without one (its signature did not verify), from the
    disagreements its record raised about a listed bag."""
    if handover.receipt is not None:
        return list(handover.receipt.refused_bags or [])
    if handover.record_id is None:
        return []
    listed = set(handover.bag_numbers or ())
    rows = session.scalars(
        select(Disagreement)
        .where(Disagreement.record_id == handover.record_id, Disagreement.bag_no.is_not(None))
        .order_by(Disagreement.id)
    )
    return [
        {"bag": d.bag_no, "code": d.code, "reason": d.message} for d in rows if d.bag_no in listed
    ]


def counted_unknown_bags(refused_bags: list[dict]) -> list[str]:
    """The refused bags the gateway did not know (issue 15: marked, never counted silently)."""
    return [r["bag"] for r in refused_bags if r["code"] == registry.UNKNOWN_BAG]


def pickup_time(session: Session, handover: Handover) -> str:
    """The legal pickup time (docs/domain.md: the driver's scan of each bag's label) of the bags
    handed over, in China time as the admin page shows times; the handover's own time when no
    bag has a scan."""
    scans = sorted(b.picked_up_at for b in handed_over(session, handover) if b.picked_up_at)
    first, last = (scans[0], scans[-1]) if scans else (handover.at, handover.at)
    return receipts.pickup_time_text(first, last, ZoneInfo(DEFAULT_TZ))


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
        tuple((r["bag"], r["reason"]) for r in row.refused_bags or ()),
    )


def base_url(session: Session) -> str:
    """PUBLIC_URL, or else the address this request came to (a receipt is only ever shown or
    printed in answer to a request)."""
    configured = settings.of(session).get("PUBLIC_URL")
    if configured:
        return str(configured)
    if not has_request_context():
        raise RuntimeError("PUBLIC_URL is not set and there is no request to take it from")
    return request.host_url


def copies(session: Session, row: ReceiptRow) -> dict[str, str]:
    """copy name -> verification URL (what each copy's QR code holds)."""
    receipt = receipt_of(row)
    secret, base = settings.secret(session), base_url(session)
    return {c: receipts.verification_url(receipt, c, secret, base) for c in receipts.COPIES}


def printed(session: Session, row: ReceiptRow) -> receipts.Receipt:
    """The receipt as printed: as signed, with its pickup time."""
    return replace(receipt_of(row), pickup_time=pickup_time(session, row.handover))


def pdf(session: Session, row: ReceiptRow) -> bytes:
    return receipts.receipt_pdf(printed(session, row), settings.secret(session), base_url(session))


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
