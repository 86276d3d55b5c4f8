"""The gateway builds the config message and the handheld reads it by one schema
(protocol/config_schema.py): a message the gateway built, fed to the handheld's streaming
parser (firmware/app/config.py in MicroPython, reading it from a file as the MQTT client
spools it), leaves every setting, parcel entry and bag weight on the device as sent."""

import json

from gateway import db
from gateway.models import Device
from gateway.services import device_config
from protocol import config_schema, wire

# The handheld's side: app/config.py apply on a Handheld stand-in with what it writes to.
HANDHELD = r"""
import json, os
from app import config
from app.parcels import FlashIndex, parse_parcel


class Handheld:
    settings = {}


hh = Handheld()
hh.storage = "flash%d" % len([d for d in os.listdir() if d.startswith("flash")])  # a new one
os.mkdir(hh.storage)
hh.parcels = FlashIndex(hh.storage + "/parcels")
hh.bags = FlashIndex(hh.storage + "/bags")
config.apply(hh, open("message.json", "rb"))
sent = json.load(open("message.json"))
print(json.dumps({
    "settings": hh.settings,
    "parcels": {trk: parse_parcel(hh.parcels.get(trk)) for trk in sent["parcels"]},
    "bags": {bag: hh.bags.get(bag) for bag in sent["bags"]},
}))
"""


def built(app, device_id: str) -> bytes:
    with db.sessions(app)() as session:
        return device_config.payload(session, session.get(Device, device_id))


def on_the_handheld(run_mpy, tmp_path, message: bytes) -> dict:
    (tmp_path / "message.json").write_bytes(message)
    return json.loads(run_mpy(HANDHELD, heap="1M").stdout.strip().splitlines()[-1])


def test_the_gateways_message_follows_the_schema(app, world):
    for device_id in ("hh-seller", "hh-hub"):
        assert config_schema.config_error(json.loads(built(app, device_id))) is None


def test_the_handheld_keeps_what_the_gateway_sent(app, world, run_mpy, tmp_path):
    from test_registry import picked_up_bag

    picked_up_bag(app, world, grams=12345)
    for device_id in ("hh-seller", "hh-hub"):
        message = built(app, device_id)
        sent = json.loads(message)
        kept = on_the_handheld(run_mpy, tmp_path, message)
        settings = {k: v for k, v in sent.items() if k in config_schema.SETTINGS}
        assert kept["settings"] == settings
        # The parcel entries come back as the facts the bag rules read (protocol/rules.py).
        assert kept["parcels"] == {
            trk: [status, hub, seller, big == 1]
            for trk, (status, hub, seller, big) in sent["parcels"].items()
        }
        assert kept["bags"] == {bag: str(grams) for bag, grams in sent["bags"].items()}
    assert sent["bags"] and sent["parcels"] == {}  # the hub's: bags only


def test_a_message_off_the_schema_is_refused_by_name():
    good = {
        "v": wire.VERSION,
        "time": 1_700_000_000,
        "bag_range": [1, 1000],
        "stores": ["S1", ["S2", "Shop"]],
        "unknown_parcel": "accept",
        "drivers": [],
        "arrival_tolerance_g": 200,
        "arrival_tolerance_pct": 2.0,
        "parcels": {"LZ1": config_schema.parcel_entry("rts", "SZ", "S1", False)},
        "bags": {"BS0000000001": config_schema.bag_entry(12345.0)},
    }
    assert config_schema.config_error(good) is None
    bad = {
        "parcels": {"LZ1": ["rts", "SZ", "S1"]},
        "bags": {"BS0000000001": "12 kg"},
        "unknown_parcel": "maybe",
        "time": -1,
        "extra": 1,
    }
    for field, value in bad.items():
        assert field.split("_")[0] in config_schema.config_error(good | {field: value}), field
    del good["drivers"]
    assert config_schema.config_error(good) == "missing drivers"


def test_only_a_delta_may_take_a_bag_off_a_handhelds_list():
    gone = {"BS0000000001": config_schema.BAG_GONE}
    delta = {"v": wire.VERSION, "time": 1_700_000_000, "s": 8, "b": 7, "bags": gone}
    assert config_schema.delta_error(delta) is None
    assert "parcels" in config_schema.delta_error(delta | {"parcels": {"LZ1": None}})
    full = {
        "v": wire.VERSION,
        "time": 1_700_000_000,
        "bag_range": [1, 1000],
        "stores": ["S1"],
        "unknown_parcel": "accept",
        "drivers": [],
        "arrival_tolerance_g": 200,
        "arrival_tolerance_pct": 2.0,
        "parcels": {},
        "bags": gone,
    }
    assert "bags" in config_schema.config_error(full)
