"""What the firmware-update tests and bench share (docs/ota.md): a handheld registered with a
gateway and running its code from its flash, a release uploaded and rolled out, the update's
state awaited, and the parcels the gateway stored."""

import json
import sqlite3
import time
from pathlib import Path

from devkit import gateway_api
from devkit.gateway_process import Gateway
from devkit.handheld import SimHandheld


def registered_handheld(
    flash_root: Path, gateway: Gateway, device_id: str, key: Path, heap: str | None = None
) -> SimHandheld:
    """A handheld registered with the gateway, its code on its flash with the release key."""
    status, device = gateway.api("POST", "/api/devices", {"device_id": device_id})
    if status != 201:
        raise RuntimeError(f"provisioning {device_id}: {status} {device}")
    flash = flash_root / device_id
    flash.mkdir(parents=True)
    settings = {k: device[k] for k in ("device_id", "mqtt", "bag_range")}
    (flash / "config.json").write_text(json.dumps(settings))
    return SimHandheld(flash, heap=heap, code_on_flash=True, release_key=key)


def upload(gateway: Gateway, release_file: Path) -> str:
    """The release's version, once the gateway has it."""
    status, body = gateway_api.call(
        gateway.url, gateway.token, "POST", "/api/releases", raw=release_file.read_bytes()
    )
    if status != 201:
        raise RuntimeError(f"upload: {status} {body}")
    return body["version"]


def roll_out(gateway: Gateway, version: str, **target) -> list[str]:
    """Offer version to devices=[ids], account_id=n or all=True; the devices' ids."""
    status, body = gateway.api("POST", f"/api/releases/{version}/rollout", target)
    if status != 200:
        raise RuntimeError(f"rollout: {status} {body}")
    return body["devices"]


def settled(state: str, running: str):
    """The update reached state, and the handheld's status the ingest stored (which may come
    after the firmware feed heard it) names the version running."""
    return lambda u: u["state"] == state and u["running"] == running


def update_of(gateway: Gateway, device_id: str) -> dict:
    updates = gateway.api("GET", "/api/releases/updates")[1]["updates"]
    return next(u for u in updates if u["device_id"] == device_id)


def wait_update(gateway: Gateway, device_id: str, pred, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = update_of(gateway, device_id)
        if pred(update):
            return update
        time.sleep(0.2)
    raise AssertionError(f"update never got there: {update_of(gateway, device_id)}")


def parcels_stored(gateway: Gateway, device_id: str) -> list[str]:
    """The tracking numbers of the handheld's parcel records the gateway stored, in order."""
    with sqlite3.connect(gateway.db_url.removeprefix("sqlite:///"), timeout=30) as conn:
        rows = conn.execute(
            "SELECT body FROM records WHERE device_id = ? AND kind = 'parcel' ORDER BY seq",
            (device_id,),
        ).fetchall()
    return [json.loads(body)["trk"] for (body,) in rows]
