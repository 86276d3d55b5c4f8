"""Handovers (a driver's signed pickup of a seller's bags) and their receipt PDF."""

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from gateway import db
from gateway.errors import Refused
from gateway.models import Handover
from gateway.services import handovers
from gateway.web.api import RECEIPT_PDF, guard
from gateway.web.api.parsing import db_id, equals, one_page, paging

bp = Blueprint("handovers", __name__)
# Outside /api: the receipt PDF, for a bearer token or a logged-in admin-page user. The public
# page each copy's QR code opens is the admin page's (gateway/web/admin/receipts.py).
pdf_bp = Blueprint(RECEIPT_PDF, __name__)
guard(pdf_bp)


def _handover(handover_id: object) -> Handover:
    """The handover by its id (the path's text for the receipt PDF: not an int route, so a
    malformed id answers this 404 in JSON rather than the admin page's HTML one)."""
    if isinstance(handover_id, str) and handover_id.isascii() and handover_id.isdigit():
        handover_id = int(handover_id)
    row_id = db_id(handover_id)
    handover = db.session().get(Handover, row_id) if row_id is not None else None
    if handover is None:
        raise Refused(404, "HANDOVER_NOT_FOUND", f"no handover {handover_id}", "id")
    return handover


@bp.get("/handovers")
def list_handovers():
    """Newest first; ?seller_id= and ?driver_id= filter."""
    pages = paging()
    query = select(Handover)
    if seller_id := request.args.get("seller_id"):
        query = query.where(equals(Handover.seller_id, seller_id))
    if driver_id := request.args.get("driver_id"):
        query = query.where(equals(Handover.driver_id, driver_id))
    rows, page = one_page(query, Handover.id.desc(), pages)
    session = db.session()
    return jsonify(handovers=[handovers.handover_json(session, h) for h in rows], **page)


@bp.get("/handovers/<int:handover_id>")
def get_handover(handover_id: int):
    return jsonify(handovers.handover_json(db.session(), _handover(handover_id)))


@pdf_bp.get("/handovers/<handover_id>/receipt.pdf")
def receipt_pdf(handover_id: str):
    handover = _handover(handover_id)
    if handover.receipt is None:
        raise Refused(
            409, "NO_RECEIPT", "the handover has no receipt: its signature did not verify", "id"
        )
    data = handovers.pdf(db.session(), handover.receipt)
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{handover.receipt.id}.pdf"'},
    )
