"""What a dispatcher does to bags and parcels on the admin page: cancel a bag, mark its receipt
failed and retry it, retry a failed pickup, record a manual hub receipt, print labels in bulk.

The rules are the services' (gateway.services.bags, parcels); this module checks the role,
reads the form, and writes the audit entry (gateway.web.admin.acting).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, make_response, redirect, request, url_for
from sqlalchemy import select

from gateway import db
from gateway.domain import lifecycle
from gateway.domain.labels import bag_labels_pdf
from gateway.errors import Refused, bad_field
from gateway.models import Address, Bag, Parcel
from gateway.services import audit, bags, parcels
from gateway.web import i18n
from gateway.web.admin import acting, queries
from gateway.web.auth import login_required

bp = Blueprint("bag_actions", __name__)

# The manual events a dispatcher applies from a bag's page, by the status that offers them:
# the hub could not sign (arrived -> receipt failed), the hub signs after all (retry), the
# seller fixed a refused bag (pickup failed -> awaiting pickup).
DISPATCHER_EVENTS = {
    lifecycle.ARRIVED: (lifecycle.RECEIPT_FAIL,),
    lifecycle.RECEIPT_FAILED: (lifecycle.RECEIVE,),
    lifecycle.PICKUP_FAILED: (lifecycle.RETRY_PICKUP,),
}
EVENT_BUTTONS = {
    lifecycle.RECEIPT_FAIL: "Mark receipt failed",
    lifecycle.RECEIVE: "Retry receipt",
    lifecycle.RETRY_PICKUP: "Retry pickup",
}
# Labels of one PDF: a busy warehouse closes a few hundred bags before the courier comes.
MAX_LABELS = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _bag_or_404(bag_no: str) -> Bag:
    found = queries.bag_by_number(db.session(), bag_no)
    if found is None:
        abort(404)
    return found


@bp.post("/bags/<bag_no>/cancel")
@login_required("dispatcher")
def cancel(bag_no: str):
    bag = _bag_or_404(bag_no)
    before = {"status": bag.status}
    try:
        why = acting.text("reason", 200, required=False)
        bags.cancel(db.session(), bag, _now(), acting.actor().username, why)
    except Refused as err:
        db.session().commit()  # a refused cancel is kept too (docs/bag-lifecycle.md)
        return acting.refused(err, "admin.bag", bag_no=bag_no)
    audit.record(
        db.session(), acting.actor(), "cancel_bag", f"bag {bag_no}", before,
        {"status": bag.status, "reason": why},
    )  # fmt: skip
    return acting.done(i18n.gettext("Bag cancelled."), "admin.bag", bag_no=bag_no)


@bp.post("/bags/<bag_no>/events")
@login_required("dispatcher")
def bag_event(bag_no: str):
    bag = _bag_or_404(bag_no)
    event = request.form.get("event", "")
    before = {"status": bag.status}
    try:
        if event not in DISPATCHER_EVENTS.get(bag.status, ()):
            raise bad_field("event", f"a {bag.status} bag offers no {event!r} here")
        cause = acting.text("cause", 200)
        bags.apply_event(db.session(), bag, event, _now(), cause, acting.actor().username)
    except Refused as err:
        return acting.refused(err, "admin.bag", bag_no=bag_no)
    audit.record(
        db.session(), acting.actor(), event, f"bag {bag_no}", before,
        {"status": bag.status, "cause": cause},
    )  # fmt: skip
    return acting.done(i18n.gettext("Done."), "admin.bag", bag_no=bag_no)


@bp.post("/parcels/receipts")
@login_required("dispatcher")
def hub_receipt():
    """The hub signed for parcels on paper: record the receipt by hand (the online time follows
    the manual's rule, as for the hub's own receipts)."""
    dbs = db.session()
    trks = request.form.get("tracking_nos", "").split()
    try:
        if not trks or len(trks) > 200 or len(set(trks)) != len(trks):
            raise bad_field("tracking_nos", "1-200 different tracking numbers, one a line")
        for trk in trks:
            if len(trk) > 64 or not db.storable(trk) or dbs.get(Parcel, trk) is None:
                raise Refused(404, "PARCEL_NOT_FOUND", f"parcel {trk!r} was never imported",
                              "tracking_nos")  # fmt: skip
        before = {trk: dbs.get(Parcel, trk).status for trk in trks}
        done = parcels.receive(dbs, trks, _now())
    except Refused as err:
        return acting.refused(err, "admin.parcels")
    audit.record(
        dbs, acting.actor(), "hub_receipt", " ".join(trks), before,
        {r.tracking_no: {"received_at": r.received_at.isoformat(), "online_at":
                         r.online_at.isoformat(), "already": r.already} for r in done},
    )  # fmt: skip
    first = trks[0] if len(trks) == 1 else ""
    message = i18n.gettext("Hub receipt recorded for {n} parcels.").format(n=len(trks))
    return acting.done(message, "admin.parcels", **({"trk": first} if first else {}))


@bp.post("/labels.pdf")
@login_required("dispatcher")
def labels():
    """One PDF of labels: the chosen bags, or every bag closed today (China time)."""
    dbs = db.session()
    now = _now()
    if request.form.get("closed_today"):
        start, end = queries.day_bounds(queries.today(now))
        query = select(Bag).where(Bag.closed_at >= start, Bag.closed_at < end).order_by(Bag.id)
    else:
        chosen = request.form.getlist("bag")[: MAX_LABELS + 1]
        query = select(Bag).where(Bag.bag_no.in_(chosen)).order_by(Bag.id)
    found = list(dbs.scalars(query.limit(MAX_LABELS + 1)))
    if not found or len(found) > MAX_LABELS:
        flash(i18n.gettext("Choose 1 to 500 bags for labels."), "error")
        return redirect(url_for("admin.bags"))
    addresses = {
        a.id: a.one_line
        for a in dbs.scalars(
            select(Address).where(Address.id.in_({b.pickup_address_id for b in found}))
        )
    }
    pdf = bag_labels_pdf(
        [
            (
                b.bag_no,
                b.service or "paid",
                b.seller_id or "",
                addresses.get(b.pickup_address_id, ""),
            )
            for b in found
        ]
    )
    audit.record(dbs, acting.actor(), "print_labels", f"{len(found)} bags", None,
                 {"bags": [b.bag_no for b in found]}, now)  # fmt: skip
    dbs.commit()
    response = make_response(pdf)
    response.mimetype = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="labels-{len(found)}.pdf"'
    return response
