"""Firmware releases: upload a signed release, roll it out, and each handheld's update state
(issue 19, docs/ota.md)."""

from typing import Any

from flask import Blueprint, jsonify, request

from gateway import db
from gateway.errors import Refused, bad_field
from gateway.models import FirmwareRelease
from gateway.services import firmware
from gateway.web.api.parsing import body, db_id, iso

bp = Blueprint("releases", __name__)


def release_json(r: FirmwareRelease) -> dict[str, Any]:
    return {
        "version": r.version,
        "sha256": r.sha256,
        "size": r.size,
        "uploaded_at": iso(r.uploaded_at),
    }


@bp.get("/releases")
def list_releases():
    return jsonify(releases=[release_json(r) for r in firmware.releases(db.session())])


@bp.post("/releases")
def upload_release():
    """The release file of `tools/release build` as the body (application/octet-stream)."""
    if request.mimetype != "application/octet-stream":
        raise Refused(400, "BAD_BODY", "send the release file as application/octet-stream", "body")
    session = db.session()
    release = firmware.upload(session, request.get_data(), None)
    session.commit()
    return jsonify(release_json(release)), 201


@bp.post("/releases/<version>/rollout")
def rollout(version: str):
    """{"devices": [ids]}, {"account_id": n}, or {"all": true}."""
    found = body()
    chosen = [k for k in ("devices", "account_id", "all") if k in found]
    if len(chosen) != 1:
        raise bad_field("devices", 'give one of "devices", "account_id" or "all": true')
    devices = found.get("devices")
    account_id = None
    if chosen == ["devices"]:
        if (
            not isinstance(devices, list)
            or not devices
            or not all(isinstance(d, str) for d in devices)
        ):
            raise bad_field("devices", "devices must be a non-empty list of device ids")
    elif chosen == ["account_id"]:
        account_id = db_id(found["account_id"])
        if account_id is None:
            raise bad_field("account_id", "account_id must be an account's id")
    elif found["all"] is not True:
        raise bad_field("all", "all must be true")
    session = db.session()
    ids = firmware.rollout(session, version, devices, account_id)
    session.commit()
    return jsonify(version=version, devices=ids)


@bp.get("/releases/updates")
def list_updates():
    """Every handheld: the version it runs and its update's state."""
    return jsonify(
        updates=[
            {
                "device_id": row.device_id,
                "running": row.running,
                "online": row.online,
                "version": row.version,
                "state": row.state,
                "fetched": row.fetched,
                "size": row.size,
                "updated_at": iso(row.updated_at),
            }
            for row in firmware.update_rows(db.session())
        ]
    )
