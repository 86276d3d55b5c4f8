"""The retained per-device config: exactly the agreed fields, bounded to one MQTT message."""

import hashlib
import json

from conftest import DRIVER_PIN, SELLER
from sqlalchemy import select

from firmware.app import wire
from gateway import db, device_config, drivers
from gateway.models import Device, Driver

FIELDS = {
    "v",
    "time",
    "bag_range",
    "parcels",
    "store_names",
    "stores",
    "unknown_parcel",
    "drivers",
    "arrival_tolerance_g",
    "arrival_tolerance_pct",
    "bags",
}


def config_of(app, device_id: str) -> tuple[bytes, dict]:
    with db.sessions(app)() as session:
        data = device_config.payload(session, session.get(Device, device_id))
    return data, json.loads(data)


def test_config_has_exactly_the_agreed_fields(app, world):
    data, config = config_of(app, "hh-seller")
    assert set(config) == FIELDS
    assert config["v"] == 1 and config["stores"] == [SELLER[0]]
    assert config["store_names"] == {SELLER[0]: SELLER[1]}
    assert config["parcels"]["LZ000000001CN"] == ["rts", "SZ", SELLER[0], 0]
    assert config["parcels"]["LZPENDING01"] == ["pending", "SZ", SELLER[0], 0]
    assert "LZOTHER0001" not in config["parcels"]  # another account's store
    assert config["unknown_parcel"] == "accept" and config["bags"] == {}
    assert (config["arrival_tolerance_g"], config["arrival_tolerance_pct"]) == (200, 2.0)


def test_driver_entry_unlocks_the_signing_key_with_the_pin(app, world):
    _, config = config_of(app, "hh-seller")
    (entry,) = config["drivers"]
    assert set(entry) == {"id", "name", "badge", "salt", "check", "key"}
    salt = bytes.fromhex(entry["salt"])
    assert len(salt) == 8
    assert entry["check"] == hashlib.sha256(salt + DRIVER_PIN.encode()).hexdigest()[:16]
    pad = hashlib.sha256(salt + b"key" + DRIVER_PIN.encode()).digest()
    key = bytes(a ^ b for a, b in zip(bytes.fromhex(entry["key"]), pad, strict=True))
    with db.sessions(app)() as session:
        assert key == drivers.key_of(session.get(Driver, "D042"), app.config["SECRET_KEY"].encode())


def test_a_hub_device_gets_bags_in_transit_with_their_weight(app, world):
    from test_registry import picked_up_bag

    bag_no = picked_up_bag(app, world, grams=12345)
    _, config = config_of(app, "hh-hub")
    assert config["bags"] == {bag_no: 12345}


def test_a_big_parcel_cache_is_cut_to_one_message(app, api, world):
    rows = [
        {"tracking_no": f"LZBULK{i:07d}CN", "seller_id": SELLER[0], "status": "rts", "hub": "SZ"}
        for i in range(3000)
    ]
    assert api.post("/api/parcels", {"parcels": rows})[0] == 200
    data, config = config_of(app, "hh-seller")
    assert len(data) <= wire.MAX_MESSAGE
    assert len(data) > wire.MAX_MESSAGE - 100  # filled, not cut early
    assert 200 < len(config["parcels"]) < 3000
    assert config["drivers"] and set(config) == FIELDS


def test_api_device_creation_publishes_the_config(app, api):
    published = []

    class FakeIngest:
        def publish_config(self, device_id, payload):
            published.append((device_id, json.loads(payload)))

    app.extensions["bagscan.publisher"] = FakeIngest()
    code, body = api.post("/api/devices", {"device_id": "hh-new"})
    assert code == 201
    assert published[0][0] == "hh-new" and published[0][1]["bag_range"] == body["bag_range"]
    with db.sessions(app)() as session:
        assert session.scalars(select(Device.id)).all() == ["hh-new"]
