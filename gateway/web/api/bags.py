"""Bags: the list, one bag with its history, cancel, manual events and the bag label."""

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from gateway import clock, db
from gateway.domain import labels, lifecycle
from gateway.errors import Refused, bad_field
from gateway.models import Address, Bag, Driver, Store
from gateway.services import bag_history, bag_list, bags
from gateway.web.api.parsing import body, equals, iso, one_page, paging

bp = Blueprint("bags", __name__)
ACTOR = "api"  # who the bag history names for a change made through the API


def _bag(bag_no: str) -> Bag:
    bag = None
    if db.storable(bag_no):
        bag = db.session().scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()
    if bag is None:
        raise Refused(404, "BAG_NOT_FOUND", f"no bag {bag_no!r}", "bag_no")
    return bag


def bag_summary(bag: Bag) -> dict[str, Any]:
    return bag_list.as_json(bag, clock.now())


@bp.get("/bags")
def list_bags():
    pages = paging()
    query = select(Bag)
    status = request.args.get("status")
    if status is not None:
        if status not in lifecycle.STATUSES:
            raise Refused(
                400, "BAD_PARAMETER", f"status must be one of {lifecycle.STATUSES}", "status"
            )
        query = query.where(Bag.status == status)
    if seller_id := request.args.get("seller_id"):
        query = query.where(equals(Bag.seller_id, seller_id))
    rows, page = one_page(query, Bag.id.desc(), pages)
    return jsonify(bags=[bag_summary(b) for b in rows], **page)


def bag_detail(bag: Bag) -> dict[str, Any]:
    session = db.session()
    driver = session.get(Driver, bag.driver_id) if bag.driver_id else None
    return bag_summary(bag) | {
        "parcels": [p.tracking_no for p in bag.parcels],
        # Parcels the device put in that the gateway refused: not members (issue 15).
        "held_out": [
            {"tracking_no": p.tracking_no, "code": p.held_out} for p in bag.held_out_parcels
        ],
        "held_out_count": bag.held_out_count,
        "conflicts": sorted(
            {d.tracking_no for d in bag.disagreements if d.code == "IN_OTHER_BAG" and d.tracking_no}
        ),
        "clean": bag.held_out_count == 0
        and not any(d.code == "IN_OTHER_BAG" for d in bag.disagreements),
        "driver": None
        if bag.driver_id is None
        else {"id": bag.driver_id, "name": driver.name if driver else None},
        "pickup_address_id": bag.pickup_address_id,
        "pickup_refused_reason": bag.pickup_refused_reason,
        "handover_id": bag.handover_id,
        "arrival_weight_g": bag.arrival_weight_g,
        "arrival_difference_g": bag.arrival_difference_g,
        "arrived_at": iso(bag.arrived_at),
        # Status changes, and revisions: a late record changed a derived fact (issue 15).
        "history": [bag_history.as_json(e) for e in bag_history.entries(session, bag)],
        "disagreements": [
            {
                "at": d.at.isoformat(),
                "code": d.code,
                "message": d.message,
                "tracking_no": d.tracking_no,
                "device_id": d.device_id,
            }
            for d in bag.disagreements
        ],
        "allowed_events": sorted(lifecycle.TRANSITIONS.get(bag.status, {})),
    }


@bp.get("/bags/<bag_no>")
def get_bag(bag_no: str):
    return jsonify(bag_detail(_bag(bag_no)))


@bp.post("/bags/<bag_no>/cancel")
def cancel_bag(bag_no: str):
    bag = _bag(bag_no)
    why = body(optional=True).get("reason", "")
    if not isinstance(why, str) or len(why) > 200 or not db.storable(why):
        raise bad_field("reason", "reason must be text of up to 200 characters")
    try:
        bags.cancel(db.session(), bag, clock.now(), ACTOR, why)
    except Refused:
        db.session().commit()  # a refused cancel is kept too (docs/bag-lifecycle.md)
        raise
    db.session().commit()
    return jsonify(bag_detail(bag))


@bp.post("/bags/<bag_no>/events")
def bag_event(bag_no: str):
    """A manual lifecycle event (bags.MANUAL_EVENTS), e.g. the hub could not sign."""
    bag = _bag(bag_no)
    found = body()
    event = found.get("event")
    if event not in bags.MANUAL_EVENTS:
        raise bad_field("event", f"event must be one of {bags.MANUAL_EVENTS}")
    cause = found.get("cause", "")
    if (
        not isinstance(cause, str)
        or not cause.strip()
        or len(cause) > 200
        or not db.storable(cause)
    ):
        raise bad_field("cause", "cause must be text of 1-200 characters")
    session = db.session()
    bags.apply_event(session, bag, event, clock.now(), cause.strip(), ACTOR)
    session.commit()
    return jsonify(bag_detail(bag))


@bp.get("/bags/<bag_no>/label.pdf")
def bag_label(bag_no: str):
    bag = _bag(bag_no)
    session = db.session()
    address = session.get(Address, bag.pickup_address_id) if bag.pickup_address_id else None
    if address is None or bag.service is None:
        raise Refused(
            409,
            "NO_PICKUP_ADDRESS",
            "the bag has no pickup address (bind its device to one)",
            "bag_no",
        )
    store = session.get(Store, bag.seller_id) if bag.seller_id else None
    seller = f"{store.seller_name} ({store.seller_id})" if store else (bag.seller_id or "")
    data = labels.bag_label_pdf(
        bag.bag_no, bag.service, seller, f"{address.warehouse_name} {address.one_line}"
    )
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{bag.bag_no}.pdf"'},
    )
