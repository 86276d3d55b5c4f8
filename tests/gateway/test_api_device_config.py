"""The retained per-device config: exactly the agreed fields, bounded to one MQTT message."""

import hashlib
import json

from sqlalchemy import select

from devkit.sample_world import DRIVER_PIN, SELLER
from gateway import db
from gateway.models import Device, Driver
from gateway.services import couriers, device_config
from protocol import config_schema, wire

# The schema's fields (protocol/config_schema.py), all of them.
# "s", the version, is numbered when a config is sent (device_config.publish), not built.
FIELDS = set(config_schema.FIELDS) - {"s"}


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
    assert config["baggable_hubs"] == ["SZ", "YW"]  # FAQ 10, the gateway's setting


def test_driver_entry_unlocks_the_signing_key_with_the_pin(app, world):
    _, config = config_of(app, "hh-seller")
    (entry,) = config["drivers"]
    assert set(entry) == {"id", "name", "badge", "salt", "check", "key"}
    salt = bytes.fromhex(entry["salt"])
    assert len(salt) == 8
    assert entry["check"] == hashlib.sha256(salt + DRIVER_PIN.encode()).hexdigest()[:16]
    pad = hashlib.sha256(salt + b"key" + DRIVER_PIN.encode()).digest()
    key = bytes(a ^ b for a, b in zip(bytes.fromhex(entry["key"]), pad, strict=True))
    secret = app.config["SECRET_KEY"].encode()
    with db.sessions(app)() as session:
        driver = session.get(Driver, "D042")
        # Not the driver's own key: its key for this account only (its route key).
        assert key != couriers.key_of(driver, secret)
        assert key == couriers.route_key(driver, secret, world.account_id)


def test_a_config_carries_only_the_drivers_of_the_devices_route(app, api, world, handheld):
    status, other = api.post("/api/accounts", {"name": "Yiwu Goods"})
    assert status == 201
    drivers = [
        {"id": "D7", "name": "李师傅", "pin": "2468", "accounts": [other["id"]]},
        {"id": "D8", "name": "赵师傅", "pin": "1357", "accounts": [world.account_id, other["id"]]},
        {"id": "D9", "name": "钱师傅", "pin": "9753"},  # on no route yet
    ]
    for d in drivers:
        assert api.post("/api/drivers", d)[0] == 201
    handheld("hh-yiwu", account_id=other["id"], role="seller")
    assert [d["id"] for d in config_of(app, "hh-seller")[1]["drivers"]] == ["D8", "D042"]
    assert [d["id"] for d in config_of(app, "hh-yiwu")[1]["drivers"]] == ["D8", "D7"]
    assert config_of(app, "hh-hub")[1]["drivers"] == []  # the hub signs no handover
    # D8's entries in the two accounts' configs unwrap to two different keys.
    (mine,) = [d for d in config_of(app, "hh-seller")[1]["drivers"] if d["id"] == "D8"]
    (theirs,) = [d for d in config_of(app, "hh-yiwu")[1]["drivers"] if d["id"] == "D8"]
    assert mine["key"] != theirs["key"] and mine["check"] == theirs["check"]


def test_a_route_names_accounts_that_exist(api):
    for accounts in ([99999], "1", [True], [1.5]):
        body = {"id": "D7", "name": "李师傅", "pin": "2468", "accounts": accounts}
        status, err = api.post("/api/drivers", body)
        assert (status, err["error"]["field"]) == (400, "accounts"), accounts


def test_a_seller_device_gets_its_accounts_bags_awaiting_pickup(app, world):
    from test_registry import bag_and_close

    bag_no = world.seller.bag(0)
    bag_and_close(world.seller, bag_no, world.parcels[:2])
    _, config = config_of(app, "hh-seller")
    assert list(config["bags"]) == [bag_no]


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


def test_a_full_config_and_index_say_bagged_for_parcels_in_another_handhelds_bag(
    app, world, handheld
):
    # What the config feed's delta told the other handheld must survive its next full config.
    from test_registry import T0

    handheld("hh-second", account_id=world.account_id, role="seller")
    bagged, free = world.parcels[0], world.parcels[1]
    world.seller.send("bag_open", T0, bag=world.seller.bag(0))
    world.seller.send("parcel", T0, bag=world.seller.bag(0), trk=bagged)
    _, config = config_of(app, "hh-second")
    assert config["parcels"][bagged][0] == config_schema.BAGGED
    assert config["parcels"][free][0] == "rts"
    _, own = config_of(app, "hh-seller")  # its own bag: the handheld knows it
    assert own["parcels"][bagged][0] == "rts"
    with db.sessions(app)() as session:
        index = device_config.index_file(session, session.get(Device, "hh-second"))
    assert index == config_schema.index_file(
        {trk: config["parcels"][trk] for trk in config["parcels"]}
    )
