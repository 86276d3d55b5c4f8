"""Handover receipts on the admin page: the printable A4 page (three copies), the QR images,
the public page each copy's QR code opens, and the public page the handheld's QR code opens at
the seller's door (gateway.domain.receipts holds the rules, protocol.receipt the door's)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import db, settings
from gateway.domain import receipts as domain
from gateway.models import Receipt
from gateway.services.handovers import base_url, pdf, printed, receipt_of
from gateway.web.auth import login_required
from protocol import receipt as door

bp = Blueprint("receipts", __name__)


def _receipt_or_404(dbs: Session, handover_id: int) -> Receipt:
    row = dbs.scalars(select(Receipt).where(Receipt.handover_id == handover_id)).one_or_none()
    if row is None:
        abort(404)
    return row


@bp.get("/handovers/<int:handover_id>/receipt")
@login_required()
def receipt_print(handover_id: int):
    """Three copies on one A4 page; the print style sheet cuts the screen chrome away."""
    dbs = db.session()
    row = _receipt_or_404(dbs, handover_id)
    receipt = printed(dbs, row)
    secret = settings.secret(dbs)
    copies = [
        (copy, domain.verification_url(receipt, copy, secret, base_url(dbs)))
        for copy in domain.COPIES
    ]
    return render_template(
        "receipt.html",
        row=row,
        receipt=receipt,
        copies=copies,
        handover_id=handover_id,
    )


@bp.get("/handovers/<int:handover_id>/qr/<copy>.svg")
@login_required()
def receipt_qr(handover_id: int, copy: str):
    if copy not in domain.COPIES:
        abort(404)
    dbs = db.session()
    receipt = receipt_of(_receipt_or_404(dbs, handover_id))
    url = domain.verification_url(receipt, copy, settings.secret(dbs), base_url(dbs))
    return Response(domain.qr_svg(url), mimetype="image/svg+xml")


@bp.get("/receipts/<receipt_id>/<copy>")
def receipt_verify(receipt_id: str, copy: str):
    """What a receipt's QR code opens: public (a seller or auditor has no login), and it
    shows only what is printed on the paper, once the copy's token checks out."""
    dbs = db.session()
    row = dbs.get(Receipt, receipt_id[:16])
    token = request.args.get("t", "")[:64]
    # The row's id is the hash of its signed fields: a row altered in the database no longer
    # matches its id, so its copies stop verifying.
    ok = (
        row is not None
        and copy in domain.COPIES
        and receipt_of(row).receipt_id == row.id
        and domain.verify(receipt_of(row), copy, token, settings.secret(dbs))
    )
    if not ok:
        return render_template("verify.html", row=None, copy=copy), 404
    return render_template("verify.html", row=row, receipt=printed(dbs, row), copy=copy)


def _door_receipt(receipt_id: str, signature: str) -> tuple[Receipt | None, bool]:
    """(the receipt row, True when the door code's signature prefix is the courier's)."""
    dbs = db.session()
    row = dbs.get(Receipt, receipt_id[: door.ID_HEX].lower())
    if row is None:
        return None, False
    given = signature[: door.SIG_HEX].lower().encode()
    # As in receipt_verify: a row altered in the database no longer matches its id.
    ok = receipt_of(row).receipt_id == row.id and hmac.compare_digest(
        row.driver_signature[: door.SIG_HEX].lower().encode(), given
    )
    return row, ok


# The handheld's QR code is uppercase (protocol/receipt.py): both spellings of the path route.
@bp.get("/r/<receipt_id>/<signature>")
@bp.get("/R/<receipt_id>/<signature>")
def door_receipt(receipt_id: str, signature: str):
    """What the seller's phone opens from the QR code on the courier's handheld (issue 18):
    public like receipt_verify. The handheld shows the code before it syncs, so a receipt the
    gateway has not received yet gets its own page: open it again later."""
    row, ok = _door_receipt(receipt_id, signature)
    if row is None:
        return render_template("verify.html", row=None, pending=True, copy="seller"), 404
    if not ok:
        return render_template("verify.html", row=None, copy="seller"), 404
    pdf_url = request.path.rstrip("/") + "/receipt.pdf"
    receipt = printed(db.session(), row)
    return render_template("verify.html", row=row, receipt=receipt, copy="seller", pdf=pdf_url)


@bp.get("/r/<receipt_id>/<signature>/receipt.pdf")
@bp.get("/R/<receipt_id>/<signature>/receipt.pdf")
def door_receipt_pdf(receipt_id: str, signature: str):
    """The receipt's PDF (the three copies the admin prints) for the seller at the door."""
    row, ok = _door_receipt(receipt_id, signature)
    if row is None or not ok:
        abort(404)
    return Response(
        pdf(db.session(), row),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{row.id}.pdf"'},
    )
