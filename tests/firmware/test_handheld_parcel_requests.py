"""Online, a parcel the handheld's cache lacks is asked for (issue 16): the gateway answers over
MQTT before the scan is answered; without an answer the handheld follows unknown_parcel, marks
the parcel "unchecked", and the gateway checks it at sync (real firmware, real Mosquitto)."""

import time

import pytest
from test_handheld_config_deltas import (
    account_with_store,
    handheld,
    wait_config,
)

from protocol import rules

OTHER_SELLER_PARCEL = "LZ400000009CN"


def other_sellers_parcel(gateway, status="rts"):
    """A parcel of store S2, which no account links: never in a handheld's config."""
    assert gateway.api("POST", "/api/stores", {"seller_id": "S2", "seller_name": "Other"})[0] == 201
    row = {"tracking_no": OTHER_SELLER_PARCEL, "seller_id": "S2", "status": status, "hub": "SZ"}
    assert gateway.api("POST", "/api/parcels", {"parcels": [row]})[0] == 200


def online_seller(tmp_path, gateway, device_id):
    account = account_with_store(gateway, ["LZ400000001CN"])
    sim = handheld(tmp_path, gateway, device_id, account_id=account["id"])
    ctl = sim.control
    ctl.wait_synced()
    wait_config(ctl, lambda c: c["n"] == 1, 30)  # the full config: its own store's parcel
    return sim, ctl


def test_a_parcel_of_an_unlinked_store_is_refused_store_not_linked_on_the_device(
    tmp_path, broker_and_gateway
):
    _, gateway = broker_and_gateway
    other_sellers_parcel(gateway)
    sim, ctl = online_seller(tmp_path, gateway, "hh-ask")
    try:
        assert ctl.scan("LZ400000001CN")["beep"] == "ok"  # from the cache: opens the bag
        refused = ctl.scan(OTHER_SELLER_PARCEL)
        assert refused["code"] == rules.STORE_NOT_LINKED
        assert refused["screen"][3] == OTHER_SELLER_PARCEL
        assert ctl.state()["bag_count"] == 1
    finally:
        sim.kill()


def test_the_gateway_answers_with_the_parcels_status(tmp_path, broker_and_gateway):
    _, gateway = broker_and_gateway
    other_sellers_parcel(gateway, status="cancelled")
    sim, ctl = online_seller(tmp_path, gateway, "hh-ask2")
    try:
        assert ctl.scan(OTHER_SELLER_PARCEL)["code"] == rules.CANCELLED
        # Unknown to the gateway too: accepted by default, checked (no "unchecked" mark).
        accepted = ctl.scan("LZ499999999CN")
        assert accepted["beep"] == "ok"
        assert accepted["screen"][2] == "LZ499999999CN"
        assert "unchecked" not in accepted["screen"]
    finally:
        sim.kill()


@pytest.mark.parametrize("lost", ["broker", "gateway"])
def test_without_an_answer_the_parcel_is_accepted_unchecked_and_checked_at_sync(
    tmp_path, broker_and_gateway, lost
):
    """Offline (no broker), or online with no answer (the gateway stopped): unknown_parcel
    ("accept") decides and the screen says "unchecked"; the gateway holds the parcel out of
    the bag when the records reach it."""
    broker, gateway = broker_and_gateway
    other_sellers_parcel(gateway)
    sim, ctl = online_seller(tmp_path, gateway, f"hh-{lost}")
    try:
        (broker if lost == "broker" else gateway).stop()
        if lost == "broker":
            deadline = time.monotonic() + 10
            while ctl.state()["connected"] and time.monotonic() < deadline:
                time.sleep(0.1)
        assert ctl.scan("LZ400000001CN")["beep"] == "ok"
        started = time.monotonic()
        accepted = ctl.scan(OTHER_SELLER_PARCEL)
        waited = time.monotonic() - started
        assert accepted["beep"] == "ok"
        assert accepted["screen"][2] == OTHER_SELLER_PARCEL
        assert accepted["screen"][5] == "unchecked"
        # Online, the scan waited for the answer that never came (app/sync.py, 1 s).
        assert (waited >= 0.9) == (lost == "gateway"), waited
        bag_no = accepted["screen"][0]
        ctl.weigh(5_000)
        ctl.key("ok")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
        (broker if lost == "broker" else gateway).start()
        ctl.wait_synced(60)
        gateway.wait_applied()
        status, bag = gateway.api("GET", f"/api/bags/{bag_no}")
        assert status == 200, bag
        assert bag["held_out"] == [
            {"tracking_no": OTHER_SELLER_PARCEL, "code": rules.STORE_NOT_LINKED}
        ]
    finally:
        sim.kill()
