"""The gateway's answer to a handheld's parcel request (gateway/ingest/parcel_lookup.py; issue 16):
the parcel's config entry, with the seller only for the device's own account's stores."""

import json

from devkit.sample_world import SELLER
from gateway import db
from gateway.ingest import parcel_lookup


def answer(app, device_id: str, trk: str):
    with db.sessions(app)() as session:
        body = parcel_lookup.answer(session, device_id, trk)
    return None if body is None else json.loads(body)


def test_a_parcel_of_the_devices_own_store_is_answered_with_its_entry(app, world):
    assert answer(app, "hh-seller", "LZPENDING01") == {
        "v": 1,
        "parcels": {"LZPENDING01": ["pending", "SZ", SELLER[0], 0]},
    }


def test_another_sellers_parcel_is_answered_without_its_seller(app, world):
    # The handheld refuses it STORE_NOT_LINKED, as the gateway's re-check does.
    assert answer(app, "hh-seller", "LZOTHER0001") == {
        "v": 1,
        "parcels": {"LZOTHER0001": ["rts", "YW", "", 0]},
    }


def test_a_parcel_the_gateway_does_not_know_is_null_and_an_unknown_device_gets_nothing(app, world):
    assert answer(app, "hh-seller", "LZNOWHERE01") == {"v": 1, "parcels": {"LZNOWHERE01": None}}
    assert answer(app, "hh-nobody", "LZPENDING01") is None
