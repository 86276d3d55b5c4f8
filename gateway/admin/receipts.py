"""Handover receipts on the admin page: the printable A4 page (three copies), the QR images,
and the public page each copy's QR code opens (gateway.domain.receipts holds the rules)."""

from __future__ import annotations

from flask import Response, abort, current_app, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import db, settings
from gateway.admin import bp
from gateway.auth import login_required
from gateway.domain import receipts as domain
from gateway.handovers import receipt_of
from gateway.models import Bag, Handover, Receipt


def bags_of(dbs: Session, handover: Handover) -> list[Bag]:
    numbers = [str(n) for n in handover.bag_numbers or []][:1000]
    return list(dbs.scalars(select(Bag).where(Bag.bag_no.in_(numbers)).order_by(Bag.bag_no)))


def _base_url() -> str:
    return str(current_app.config.get("PUBLIC_URL") or request.host_url)


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
    receipt = receipt_of(row)
    secret = settings.secret(dbs)
    copies = [
        (copy, domain.verification_url(receipt, copy, secret, _base_url()))
        for copy in domain.COPIES
    ]
    return render_template(
        "receipt.html", row=row, receipt=receipt, copies=copies, handover_id=handover_id
    )


@bp.get("/handovers/<int:handover_id>/qr/<copy>.svg")
@login_required()
def receipt_qr(handover_id: int, copy: str):
    if copy not in domain.COPIES:
        abort(404)
    dbs = db.session()
    receipt = receipt_of(_receipt_or_404(dbs, handover_id))
    url = domain.verification_url(receipt, copy, settings.secret(dbs), _base_url())
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
    return render_template("verify.html", row=row, copy=copy)
