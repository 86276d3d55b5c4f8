"""Courier pickup and hub arrival on the real firmware, through the control channel."""

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from test_handheld_bagging import device  # noqa: F401 - the fixture

from firmware.app import wire, wire_schema
from gateway.domain.receipts import HandoverFields, verify_driver_signature

DRIVER_KEY = bytes(range(32))
SALT = bytes.fromhex("0011223344556677")
PIN = "4711"


def driver_entry(driver_id="D042", name="王师傅", badge="BADGE-042", pin=PIN, key=DRIVER_KEY):
    """A config entry as the gateway builds it (docs/firmware.md, "Driver key")."""
    pad = hashlib.sha256(SALT + b"key" + pin.encode()).digest()
    return {
        "id": driver_id,
        "name": name,
        "badge": badge,
        "salt": SALT.hex(),
        "check": hashlib.sha256(SALT + pin.encode()).hexdigest()[:16],
        "key": bytes(a ^ b for a, b in zip(key, pad, strict=True)).hex(),
    }


def next_beep(ctl):
    return ctl.expect(lambda o: "beep" in o)


def press(ctl, *keys):
    for k in keys:
        ctl.key(k)


def to_pickup(ctl):
    ctl.key("mode")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "PICKUP")


def sign_in_with_keys(ctl, pin=PIN):
    for digit in pin:
        press(ctl, *["up"] * int(digit), "ok")
    return next_beep(ctl)


@pytest.fixture
def pickup_device(device):  # noqa: F811
    # stores as the gateway sends them (seller ids) with their names alongside.
    return device(
        drivers=[driver_entry()], stores=["S1", "S2"], store_names={"S1": "深圳小商店|A,B"}
    )


def test_driver_signs_in_with_badge_and_pin_keys(pickup_device):
    hh = pickup_device
    ctl = hh.control
    to_pickup(ctl)
    ctl.send("scan BADGE-042")
    ctl.expect(lambda o: o.get("screen", ["", ""])[2:3] == ["PIN"])
    assert sign_in_with_keys(ctl)["beep"] == "ok"
    state = ctl.state()
    assert state["mode"] == "pickup" and state["step"] == "bags" and state["driver"] == "D042"
    assert [r["drv"] for r in hh.journal() if r["k"] == "signin"] == ["D042"]


def test_a_wrong_pin_does_not_sign_in(pickup_device):
    ctl = pickup_device.control
    to_pickup(ctl)
    ctl.send("scan DRV:D042")
    event = ctl.scan("PIN:1234")
    assert event["code"] == "WRONG_PIN"
    assert ctl.state()["driver"] is None or ctl.state()["step"] == "pin"
    event = ctl.scan("DRV:D999")
    assert event["code"] == "UNKNOWN_DRIVER"
    assert not [r for r in pickup_device.journal() if r["k"] == "signin"]


def test_handover_is_signed_and_verifies_with_the_gateway(pickup_device):
    hh = pickup_device
    ctl = hh.control
    to_pickup(ctl)
    ctl.send("scan DRV:D042")
    assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"
    bags = ["BS0000000003", "BS0000000001", "BS0000000002", "BS0000000009"]
    for bag in bags:
        assert ctl.scan(bag)["beep"] == "ok"
    assert ctl.scan("BS0000000002")["code"] == "DUPLICATE"
    # The courier refuses the last bag: cancel, choose "packaging", ok.
    press(ctl, "cancel")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "REFUSE")
    press(ctl, "up", "ok")
    assert next_beep(ctl)["beep"] == "warn"
    press(ctl, "ok")
    done = ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
    assert done["beep"] == "ok"

    recs = hh.journal()
    pickups = [r for r in recs if r["k"] == "pickup"]
    assert [r["bag"] for r in pickups] == bags
    assert all(wire_schema.record_error(r) is None for r in recs)
    (refusal,) = [r for r in recs if r["k"] == "pickup_refuse"]
    assert refusal["bag"] == "BS0000000009" and refusal["why"] == wire.REFUSE_REASONS[1]
    (handover,) = [r for r in recs if r["k"] == "handover"]
    assert handover["hid"] == "hh-test-1" and done["screen"][1] == "hh-test-1"
    assert handover["drv"] == "D042" and handover["seller"] == "S1"
    assert sorted(handover["bags"]) == sorted(bags[:3])
    fields = HandoverFields(
        pickup_date=date.fromisoformat(handover["date"]),
        seller_id="S1",
        seller_name="深圳小商店|A,B",
        bag_numbers=tuple(handover["bags"]),
        driver_id="D042",
        driver_name="王师傅",
    )
    assert verify_driver_signature(fields, handover["sig"], DRIVER_KEY)
    assert not verify_driver_signature(fields, handover["sig"], bytes(32))
    # The pickup date is the seller's (UTC+8) date of the handover.
    local = datetime.fromtimestamp(handover["w"], UTC) + timedelta(hours=8)
    assert handover["date"] == local.date().isoformat()
    assert ctl.state()["step"] == "badge"  # signed out after the handover


def test_mode_key_cycles_bagging_pickup_hub(device):  # noqa: F811
    ctl = device().control
    # The empty scale's first reading shows on the bagging screen: taken before the cycle,
    # it cannot come between the screens of the mode key.
    ctl.weigh(0)
    modes = []
    for _ in range(4):
        ctl.key("mode")
        modes.append(ctl.expect(lambda o: "screen" in o)["screen"][0])
    assert modes == ["PICKUP", "HUB ARRIVAL", "BAGGING", "PICKUP"]


@pytest.mark.parametrize(
    ("grams", "verdict"),
    [(12_000, 1), (12_240, 1), (12_241, 0), (11_700, 0), (11_760, 1)],
)
def test_hub_arrival_compares_with_the_bagging_weight(device, grams, verdict):  # noqa: F811
    # 12 kg at bagging: the allowance is max(200 g, 2 % = 240 g) = 240 g.
    hh = device(bags={"BS0000000007": 12_000})
    ctl = hh.control
    press(ctl, "mode", "mode")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "HUB ARRIVAL")
    ctl.send("scan BS0000000007")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "BS0000000007")
    ctl.weigh(grams)
    ctl.key("ok")
    event = next_beep(ctl)
    assert event["screen"][1] == ("RECEIVED" if verdict else "EXCEPTION")
    assert event["screen"][2] == f"{grams - 12_000:+d} g"
    (arrive,) = [r for r in hh.journal() if r["k"] == "arrive"]
    assert arrive == {**arrive, "bag": "BS0000000007", "g": grams, "ok": verdict}
