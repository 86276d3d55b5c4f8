"""Parcels: the platform's import, one parcel's state, and the hub signing for parcels."""

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from gateway import clock, db
from gateway.errors import Refused, bad_field
from gateway.ingest.registry import bag_of_parcel
from gateway.models import Bag, BagParcel, Disagreement, Parcel
from gateway.services import parcels, transit
from gateway.web.api.parsing import body, iso, time_field

bp = Blueprint("parcels", __name__)


def parcel_json(parcel: Parcel) -> dict[str, Any]:
    bag = bag_of_parcel(db.session(), parcel.tracking_no)
    return {
        "tracking_no": parcel.tracking_no,
        "seller_id": parcel.seller_id,
        "status": parcel.status,
        "hub": parcel.hub,
        "sea_big_item": parcel.sea_big_item,
        "bag_no": bag.bag_no if bag else None,
        # Every bag the parcel was put into: a member, or held out with the gateway's reason;
        # more than one claim of a live bag is a conflict (issue 15).
        "bags": [
            {"bag_no": b, "held_out": held}
            for b, held in db.session().execute(
                select(Bag.bag_no, BagParcel.held_out)
                .join(BagParcel, BagParcel.bag_id == Bag.id)
                .where(BagParcel.tracking_no == parcel.tracking_no)
                .order_by(BagParcel.id)
            )
        ],
        "conflict": db.session().scalar(
            select(Disagreement.id)
            .where(
                Disagreement.tracking_no == parcel.tracking_no,
                Disagreement.code == "IN_OTHER_BAG",
            )
            .limit(1)
        )
        is not None,
        "received_at": iso(parcel.received_at),
        "online_at": iso(parcel.online_at),
        "online_reason": parcel.online_reason,
        # FAQ 9: its bag was picked up more than 72 h ago and it is not at the hub yet.
        "in_transit_overdue": transit.parcel_overdue(parcel, bag, clock.now()),
    }


@bp.post("/parcels")
def import_parcels():
    rows = body().get("parcels")
    if not isinstance(rows, list):
        raise bad_field("parcels", "parcels must be a list of parcels")
    valid = parcels.validate(rows)
    session = db.session()
    created, updated = parcels.upsert(session, valid)
    session.commit()
    # The devices' parcel caches follow as deltas (gateway/ingest/config_feed.py).
    return jsonify(created=created, updated=updated), 200


@bp.get("/parcels/<tracking_no>")
def get_parcel(tracking_no: str):
    parcel = db.session().get(Parcel, tracking_no) if db.storable(tracking_no) else None
    if parcel is None:
        raise Refused(404, "PARCEL_NOT_FOUND", f"no parcel {tracking_no!r}", "tracking_no")
    return jsonify(parcel_json(parcel))


@bp.post("/hub/receipts")
def hub_receipts():
    """Parcels signed for at the hub: received, with their online time (domain.online_time)."""
    found = body()
    trks = found.get("parcels")
    if not isinstance(trks, list) or not trks or len(trks) > parcels.MAX_IMPORT:
        raise bad_field("parcels", "parcels must be a non-empty list of tracking numbers")
    for i, trk in enumerate(trks):
        if not isinstance(trk, str) or not db.storable(trk):
            raise bad_field(f"parcels[{i}]", "a tracking number is text without NUL")
    if len(set(trks)) != len(trks):
        raise bad_field("parcels", "a tracking number appears twice")
    session = db.session()
    for i, trk in enumerate(trks):
        if session.get(Parcel, trk) is None:
            raise Refused(
                404, "PARCEL_NOT_FOUND", f"parcel {trk!r} was never imported", f"parcels[{i}]"
            )
    received_at = time_field(found, "received_at")
    done = parcels.receive(session, trks, received_at)
    session.commit()
    return jsonify(
        parcels=[
            {
                "tracking_no": r.tracking_no,
                "bag_no": r.bag_no,
                "received_at": r.received_at.isoformat(),
                "online_at": r.online_at.isoformat(),
                "online_reason": r.online_reason,
                "already_received": r.already,
            }
            for r in done
        ]
    )
