"""The JSON API under /api, bearer-token auth (BAGSCAN_API_TOKEN)."""

import hmac
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from gateway import db, devices
from gateway.models import Bag

bp = Blueprint("api", __name__, url_prefix="/api")

PER_PAGE_MAX = 200


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.field:
        body["field"] = err.field
    return jsonify(error=body), err.status


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    code = (err.name or "error").upper().replace(" ", "_")
    return jsonify(error={"code": code, "message": err.description}), err.code


@bp.before_request
def _require_token() -> None:
    if request.endpoint == "api.health":
        return
    expected = current_app.config["API_TOKEN"]
    if not expected:
        raise ApiError(503, "API_DISABLED", "set BAGSCAN_API_TOKEN to enable the JSON API")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "UNAUTHORIZED", "a valid bearer token is required")


@bp.get("/health")
def health():
    db.session().execute(select(1))
    return jsonify(status="ok")


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "BAD_PARAMETER", f"{name} must be an integer {lo}..{hi}", name)
    return int(raw)


def bag_summary(bag: Bag) -> dict[str, Any]:
    return {
        "bag_no": bag.bag_no,
        "status": bag.status,
        "device_id": bag.device_id,
        "parcel_count": bag.parcel_count,
        "weight_g": bag.weight_g,
        "dims_cm": bag.dims_cm,
        "opened_at": bag.opened_at.isoformat(),
        "closed_at": bag.closed_at.isoformat() if bag.closed_at else None,
    }


@bp.get("/bags")
def list_bags():
    page = _int_arg("page", 1, 1, 10**6)
    per_page = _int_arg("per_page", 50, 1, PER_PAGE_MAX)
    query = select(Bag)
    if status := request.args.get("status"):
        query = query.where(Bag.status == status)
    session = db.session()
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    bags = session.scalars(
        query.order_by(Bag.id.desc()).limit(per_page).offset((page - 1) * per_page)
    )
    return jsonify(bags=[bag_summary(b) for b in bags], page=page, per_page=per_page, total=total)


@bp.get("/bags/<bag_no>")
def get_bag(bag_no: str):
    bag = db.session().scalars(select(Bag).where(Bag.bag_no == bag_no)).one_or_none()
    if bag is None:
        raise ApiError(404, "BAG_NOT_FOUND", f"no bag {bag_no!r}", "bag_no")
    return jsonify(
        bag_summary(bag)
        | {
            "parcels": [p.tracking_no for p in bag.parcels],
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
        }
    )


@bp.post("/devices")
def create_device():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_JSON", "the body must be a JSON object")
    session = db.session()
    try:
        device, password = devices.provision(
            session, body.get("device_id"), current_app.config["BAG_RANGE_SIZE"]
        )
    except devices.ProvisionError as err:
        raise ApiError(400, "BAD_FIELD", str(err), err.field) from None
    session.commit()
    ingest = current_app.extensions.get("bagscan.ingest")
    if ingest is not None:
        ingest.publish_config(device.id, devices.config_payload(device))
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
