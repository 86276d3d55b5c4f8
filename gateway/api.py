"""The JSON API under /api (bearer token, BAGSCAN_API_TOKEN), and the receipt pages.

docs/api.md describes every endpoint; /api/openapi.json serves the OpenAPI document. Every
error is a JSON body {"error": {"code", "message", "field"?}} with a 4xx status; a request
that fails writes nothing (each handler commits once, at its end).
"""

import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from gateway import (
    accounts,
    auth,
    bags,
    db,
    device_config,
    devices,
    drivers,
    handovers,
    parcels,
    settings,
)
from gateway.domain import labels, lifecycle
from gateway.models import (
    Account,
    Address,
    Bag,
    Device,
    Driver,
    Handover,
    Parcel,
    Record,
    Store,
)
from gateway.openapi import DOCUMENT
from gateway.registry import bag_of_parcel

bp = Blueprint("api", __name__, url_prefix="/api")
# Outside /api: the receipt PDF, for a bearer token or a logged-in admin-page user. The public
# page each copy's QR code opens is the admin page's (gateway/admin/receipts.py).
pages = Blueprint("receipt_pages", __name__)

PER_PAGE_MAX = 200
PUBLIC_ENDPOINTS = {"api.health", "api.openapi"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _api_error(err: ApiError):
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.field:
        body["field"] = err.field
    return jsonify(error=body), err.status


def _http_error(err: HTTPException):
    code = (err.name or "error").upper().replace(" ", "_")
    return jsonify(error={"code": code, "message": err.description}), err.code


def _require_token() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if request.blueprint == pages.name and auth.current_user() is not None:
        return
    expected = current_app.config["API_TOKEN"]
    if not expected:
        raise ApiError(503, "API_DISABLED", "set BAGSCAN_API_TOKEN to enable the JSON API")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "UNAUTHORIZED", "a valid bearer token is required")


for _bp in (bp, pages):
    _bp.register_error_handler(ApiError, _api_error)
    _bp.register_error_handler(HTTPException, _http_error)
    _bp.before_request(_require_token)


# --- helpers ------------------------------------------------------------------------------


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_JSON", "the body must be a JSON object")
    return body


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "BAD_PARAMETER", f"{name} must be an integer {lo}..{hi}", name)
    return int(raw)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _time_field(body: dict, name: str) -> datetime:
    raw = body.get(name)
    if raw is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ApiError(400, "BAD_FIELD", f"{name} must be an ISO 8601 time with offset", name)
    return at.astimezone(UTC)


def _bag(bag_no: str) -> Bag:
    bag = db.session().scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()
    if bag is None:
        raise ApiError(404, "BAG_NOT_FOUND", f"no bag {bag_no!r}", "bag_no")
    return bag


def _account(account_id: int) -> Account:
    account = db.session().get(Account, account_id)
    if account is None:
        raise ApiError(404, "ACCOUNT_NOT_FOUND", f"no account {account_id}", "account_id")
    return account


def _republish_configs() -> None:
    """Parcels, stores or drivers changed: every device gets a fresh retained config."""
    device_config.publish(db.session())


def _setup(fn, *args):
    try:
        return fn(db.session(), *args)
    except accounts.SetupError as err:
        raise ApiError(err.status, err.code, err.message, err.field) from None


# --- health and the OpenAPI document ------------------------------------------------------


@bp.get("/health")
def health():
    db.session().execute(select(1))
    return jsonify(status="ok")


@bp.get("/openapi.json")
def openapi():
    return jsonify(DOCUMENT)


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(_rest: str):
    """Unknown /api paths answer in JSON too (the app's own 404 page is HTML)."""
    raise ApiError(404, "NOT_FOUND", f"no API endpoint {request.path}")


# --- bags ---------------------------------------------------------------------------------


def bag_summary(bag: Bag) -> dict[str, Any]:
    late = None
    if bag.pickup_due_at is not None:
        late = (bag.picked_up_at or datetime.now(UTC)) > bag.pickup_due_at
    return {
        "bag_no": bag.bag_no,
        "status": bag.status,
        "status_zh": lifecycle.LABELS_ZH.get(bag.status),
        "device_id": bag.device_id,
        "seller_id": bag.seller_id,
        "account_id": bag.account_id,
        "service": bag.service,
        "parcel_count": bag.parcel_count,
        "weight_g": bag.weight_g,
        "dims_cm": bag.dims_cm,
        "opened_at": bag.opened_at.isoformat(),
        "closed_at": _iso(bag.closed_at),
        "pickup_due_at": _iso(bag.pickup_due_at),
        "late": late,
        "picked_up_at": _iso(bag.picked_up_at),
        "disagreement_count": bag.disagreement_count,
    }


@bp.get("/bags")
def list_bags():
    page = _int_arg("page", 1, 1, 10**6)
    per_page = _int_arg("per_page", 50, 1, PER_PAGE_MAX)
    query = select(Bag)
    if status := request.args.get("status"):
        if status not in lifecycle.STATUSES:
            raise ApiError(
                400, "BAD_PARAMETER", f"status must be one of {lifecycle.STATUSES}", "status"
            )
        query = query.where(Bag.status == status)
    if seller_id := request.args.get("seller_id"):
        query = query.where(Bag.seller_id == seller_id)
    session = db.session()
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.order_by(Bag.id.desc()).limit(per_page).offset((page - 1) * per_page)
    )
    return jsonify(bags=[bag_summary(b) for b in rows], page=page, per_page=per_page, total=total)


def bag_detail(bag: Bag) -> dict[str, Any]:
    session = db.session()
    driver = session.get(Driver, bag.driver_id) if bag.driver_id else None
    return bag_summary(bag) | {
        "parcels": [p.tracking_no for p in bag.parcels],
        "driver": None
        if bag.driver_id is None
        else {"id": bag.driver_id, "name": driver.name if driver else None},
        "pickup_address_id": bag.pickup_address_id,
        "pickup_refused_reason": bag.pickup_refused_reason,
        "handover_id": bag.handover_id,
        "arrival_weight_g": bag.arrival_weight_g,
        "arrival_difference_g": bag.arrival_difference_g,
        "arrived_at": _iso(bag.arrived_at),
        "history": [
            {
                "at": h.at.isoformat(),
                "from": h.from_status,
                "to": h.to_status,
                "cause": h.cause,
                "actor": h.actor,
            }
            for h in bag.history
        ],
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


def _actor() -> str:
    return "api"


@bp.post("/bags/<bag_no>/cancel")
def cancel_bag(bag_no: str):
    bag = _bag(bag_no)
    body = request.get_json(silent=True) or {}
    why = body.get("reason", "") if isinstance(body, dict) else ""
    if not isinstance(why, str) or len(why) > 200:
        raise ApiError(400, "BAD_FIELD", "reason must be text of up to 200 characters", "reason")
    try:
        bags.cancel(db.session(), bag, datetime.now(UTC), _actor(), why)
    except lifecycle.TransitionRefused as err:
        db.session().rollback()
        raise ApiError(409, err.code, err.message, "bag_no") from None
    db.session().commit()
    return jsonify(bag_detail(bag))


@bp.post("/bags/<bag_no>/events")
def bag_event(bag_no: str):
    """A manual lifecycle event (bags.MANUAL_EVENTS), e.g. the hub could not sign."""
    bag = _bag(bag_no)
    body = _body()
    event = body.get("event")
    if event not in bags.MANUAL_EVENTS:
        raise ApiError(400, "BAD_FIELD", f"event must be one of {bags.MANUAL_EVENTS}", "event")
    cause = body.get("cause", "")
    if not isinstance(cause, str) or not cause.strip() or len(cause) > 200:
        raise ApiError(400, "BAD_FIELD", "cause must be text of 1-200 characters", "cause")
    session = db.session()
    try:
        bags.move(session, bag, event, datetime.now(UTC), cause.strip(), _actor())
    except lifecycle.TransitionRefused as err:
        session.rollback()
        raise ApiError(409, err.code, err.message, "event") from None
    session.commit()
    return jsonify(bag_detail(bag))


@bp.get("/bags/<bag_no>/label.pdf")
def bag_label(bag_no: str):
    bag = _bag(bag_no)
    session = db.session()
    address = session.get(Address, bag.pickup_address_id) if bag.pickup_address_id else None
    if address is None or bag.service is None:
        raise ApiError(
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


# --- parcels and the hub ------------------------------------------------------------------


def parcel_json(parcel: Parcel) -> dict[str, Any]:
    bag = bag_of_parcel(db.session(), parcel.tracking_no)
    return {
        "tracking_no": parcel.tracking_no,
        "seller_id": parcel.seller_id,
        "status": parcel.status,
        "hub": parcel.hub,
        "sea_big_item": parcel.sea_big_item,
        "bag_no": bag.bag_no if bag else None,
        "received_at": _iso(parcel.received_at),
        "online_at": _iso(parcel.online_at),
        "online_reason": parcel.online_reason,
    }


@bp.post("/parcels")
def import_parcels():
    body = _body()
    rows = body.get("parcels")
    if not isinstance(rows, list):
        raise ApiError(400, "BAD_FIELD", "parcels must be a list of parcels", "parcels")
    try:
        valid = parcels.validate(rows)
    except parcels.ImportRefused as err:
        field = f"parcels[{err.row - 1}].{err.field}" if err.row else err.field
        raise ApiError(400, "BAD_FIELD", str(err), field) from None
    session = db.session()
    created, updated = parcels.upsert(session, valid)
    session.commit()
    _republish_configs()
    return jsonify(created=created, updated=updated), 200


@bp.get("/parcels/<tracking_no>")
def get_parcel(tracking_no: str):
    parcel = db.session().get(Parcel, tracking_no)
    if parcel is None:
        raise ApiError(404, "PARCEL_NOT_FOUND", f"no parcel {tracking_no!r}", "tracking_no")
    return jsonify(parcel_json(parcel))


@bp.post("/hub/receipts")
def hub_receipts():
    """Parcels signed for at the hub: received, with their online time (domain.online_time)."""
    body = _body()
    trks = body.get("parcels")
    if not isinstance(trks, list) or not trks or len(trks) > parcels.MAX_IMPORT:
        raise ApiError(
            400, "BAD_FIELD", "parcels must be a non-empty list of tracking numbers", "parcels"
        )
    session = db.session()
    for i, trk in enumerate(trks):
        if not isinstance(trk, str) or session.get(Parcel, trk) is None:
            raise ApiError(
                404, "PARCEL_NOT_FOUND", f"parcel {trk!r} was never imported", f"parcels[{i}]"
            )
    if len(set(trks)) != len(trks):
        raise ApiError(400, "BAD_FIELD", "a tracking number appears twice", "parcels")
    received_at = _time_field(body, "received_at")
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


# --- handovers and receipts ---------------------------------------------------------------


def _handover(handover_id: int) -> Handover:
    handover = db.session().get(Handover, handover_id)
    if handover is None:
        raise ApiError(404, "HANDOVER_NOT_FOUND", f"no handover {handover_id}", "id")
    return handover


@bp.get("/handovers")
def list_handovers():
    """Newest first; ?seller_id= and ?driver_id= filter."""
    page = _int_arg("page", 1, 1, 10**6)
    per_page = _int_arg("per_page", 50, 1, PER_PAGE_MAX)
    query = select(Handover)
    if seller_id := request.args.get("seller_id"):
        query = query.where(Handover.seller_id == seller_id)
    if driver_id := request.args.get("driver_id"):
        query = query.where(Handover.driver_id == driver_id)
    session = db.session()
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.order_by(Handover.id.desc()).limit(per_page).offset((page - 1) * per_page)
    )
    return jsonify(
        handovers=[handovers.handover_json(session, h) for h in rows],
        page=page,
        per_page=per_page,
        total=total,
    )


@bp.get("/handovers/<int:handover_id>")
def get_handover(handover_id: int):
    return jsonify(handovers.handover_json(db.session(), _handover(handover_id)))


@pages.get("/handovers/<int:handover_id>/receipt.pdf")
def receipt_pdf(handover_id: int):
    handover = _handover(handover_id)
    if handover.receipt is None:
        raise ApiError(
            409, "NO_RECEIPT", "the handover has no receipt: its signature did not verify", "id"
        )
    data = handovers.pdf(db.session(), handover.receipt)
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{handover.receipt.id}.pdf"'},
    )


# --- setup: accounts, stores, addresses, drivers, devices ---------------------------------


@bp.post("/accounts")
def create_account():
    account = _setup(accounts.create_account, _body())
    db.session().commit()
    return jsonify(id=account.id, name=account.name, tz=account.tz), 201


@bp.post("/stores")
def register_store():
    store = _setup(accounts.register_store, _body())
    db.session().commit()
    return jsonify(seller_id=store.seller_id, seller_name=store.seller_name), 201


@bp.post("/accounts/<int:account_id>/stores")
def link_store(account_id: int):
    store = _setup(accounts.link_store, _account(account_id), _body())
    db.session().commit()
    _republish_configs()
    return jsonify(seller_id=store.seller_id, seller_name=store.seller_name, account_id=account_id)


@bp.post("/accounts/<int:account_id>/addresses")
def add_address(account_id: int):
    address = _setup(accounts.add_address, _account(account_id), _body())
    db.session().commit()
    return jsonify(accounts.address_json(address)), 201


@bp.post("/drivers")
def create_driver():
    body = _body()
    session = db.session()
    try:
        driver = drivers.create(
            session,
            settings.secret(session),
            body.get("id"),
            body.get("name"),
            body.get("badge"),
            body.get("pin"),
        )
    except drivers.DriverError as err:
        code = "DRIVER_EXISTS" if "exists" in str(err) else "BAD_FIELD"
        raise ApiError(409 if code == "DRIVER_EXISTS" else 400, code, str(err), err.field) from None
    session.commit()
    _republish_configs()
    return jsonify(id=driver.id, name=driver.name, badge=driver.badge), 201


def device_json(d: Device, unapplied: int) -> dict[str, Any]:
    return {
        "device_id": d.id,
        "role": d.role,
        "account_id": d.account_id,
        "pickup_address_id": d.pickup_address_id,
        "bag_range": [d.bag_range_lo, d.bag_range_hi],
        "applied_seq": d.applied_seq,
        # Stored (so acknowledged) but not yet applied to bags: under load the bags follow
        # the acknowledgements (docs/protocol.md, step 5).
        "unapplied": unapplied,
        "online": d.online,
        "last_seen": _iso(d.last_seen),
        "status": d.status,
    }


@bp.get("/devices")
def list_devices():
    session = db.session()
    rows = session.scalars(select(Device).order_by(Device.id)).all()
    unapplied = dict(
        session.execute(
            select(Record.device_id, func.count())
            .join(Device, Device.id == Record.device_id)
            .where(Record.seq > Device.applied_seq)
            .group_by(Record.device_id)
        ).all()
    )
    return jsonify(devices=[device_json(d, unapplied.get(d.id, 0)) for d in rows])


def _binding(body: dict) -> dict[str, Any]:
    """The role, account and pickup address given for a device (only the keys present)."""
    session = db.session()
    out: dict[str, Any] = {}
    if "role" in body:
        if body["role"] not in ("seller", "hub"):
            raise ApiError(400, "BAD_FIELD", "role must be seller or hub", "role")
        out["role"] = body["role"]
    account_id = body.get("account_id")
    if "account_id" in body:
        if account_id is not None and (
            not isinstance(account_id, int) or session.get(Account, account_id) is None
        ):
            raise ApiError(400, "BAD_FIELD", "account_id must be an existing account", "account_id")
        out["account_id"] = account_id
    if "pickup_address_id" in body:
        address_id = body["pickup_address_id"]
        address = session.get(Address, address_id) if isinstance(address_id, int) else None
        if address_id is not None and (
            address is None or address.kind != "pickup" or address.account_id != account_id
        ):
            raise ApiError(
                400,
                "BAD_FIELD",
                "pickup_address_id must be a pickup address of the device's account",
                "pickup_address_id",
            )
        out["pickup_address_id"] = address_id
    return out


@bp.post("/devices")
def create_device():
    body = _body()
    session = db.session()
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise ApiError(400, "BAD_FIELD", "replace must be true or false", "replace")
    device_id = body.get("device_id")
    if isinstance(device_id, str) and session.get(Device, device_id) is not None and not replace:
        raise ApiError(
            409,
            "DEVICE_EXISTS",
            f'device {device_id!r} exists; send "replace": true to renew its password',
            "device_id",
        )
    binding = _binding(body)
    try:
        device, password = devices.provision(
            session, device_id, current_app.config["BAG_RANGE_SIZE"]
        )
    except devices.ProvisionError as err:
        raise ApiError(400, "BAD_FIELD", str(err), err.field) from None
    for name, value in binding.items():
        setattr(device, name, value)
    session.commit()
    device_config.publish(session, [device.id])
    return jsonify(
        device_id=device.id,
        mqtt={
            "host": current_app.config["DEVICE_MQTT_HOST"],
            "port": int(current_app.config["DEVICE_MQTT_PORT"]),
            "user": device.id,
            "password": password,
            "tls": bool(current_app.config.get("DEVICE_MQTT_TLS", False)),
        },
        bag_range=[device.bag_range_lo, device.bag_range_hi],
    ), 201
