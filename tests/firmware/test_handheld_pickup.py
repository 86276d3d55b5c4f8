"""Courier pickup and hub arrival on the real firmware, through the control channel."""

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from test_handheld_bagging import device  # noqa: F401 - the fixture

from gateway.domain.receipts import HandoverFields, verify_driver_signature
from protocol import rules, wire, wire_schema

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
    """Each digit: up to it, ok; then down from 0 to "ok" and ok tries the PIN."""
    for digit in pin:
        press(ctl, *["up"] * int(digit), "ok")
    press(ctl, "down", "ok")
    return next_beep(ctl)


# Bags of the account awaiting pickup, closed on other handhelds: the config's "bags".
OTHER_HANDHELDS_BAGS = {f"BS000000500{i}": 9_000 + i for i in range(1, 10)}


@pytest.fixture
def pickup_device(device):  # noqa: F811
    # stores as the gateway sends them (seller ids) with their names alongside.
    return device(
        drivers=[driver_entry()],
        stores=["S1", "S2"],
        store_names={"S1": "深圳小商店|A,B"},
        bags=OTHER_HANDHELDS_BAGS,
    )


def signed_in(hh):
    ctl = hh.control
    to_pickup(ctl)
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"
    return ctl


def screen_after(ctl, *keys):
    """The screen after pressing keys, one screen per key."""
    for k in keys:
        ctl.key(k)
        event = ctl.expect(lambda o: "screen" in o)
    return event["screen"]


def test_driver_signs_in_with_badge_and_pin_keys(pickup_device):
    hh = pickup_device
    ctl = hh.control
    to_pickup(ctl)
    badge = ctl.scan("BADGE-042")  # a badge scan beeps like every scan
    assert badge["beep"] == "ok" and badge["screen"][2] == "PIN"
    assert sign_in_with_keys(ctl)["beep"] == "ok"
    state = ctl.state()
    # Two linked stores: the driver chooses whose handover it is, then scans.
    assert state["mode"] == "pickup" and state["step"] == "seller" and state["driver"] == "D042"
    assert [r["drv"] for r in hh.journal() if r["k"] == "signin"] == ["D042"]


def test_a_wrong_pin_does_not_sign_in(pickup_device):
    ctl = pickup_device.control
    to_pickup(ctl)
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    event = ctl.scan("PIN:1234")
    assert event["code"] == "WRONG_PIN"
    assert ctl.state()["driver"] is None or ctl.state()["step"] == "pin"
    event = ctl.scan("DRV:D999")
    assert event["code"] == "UNKNOWN_DRIVER"
    assert not [r for r in pickup_device.journal() if r["k"] == "signin"]


def test_handover_is_signed_and_verifies_with_the_gateway(pickup_device):
    hh = pickup_device
    ctl = signed_in(hh)
    bags = ["BS0000005003", "BS0000005001", "BS0000005002", "BS0000005009"]
    for bag in bags:
        assert ctl.scan(bag)["beep"] == "ok"
    assert ctl.scan("BS0000005002")["code"] == rules.BAG_SCANNED
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
    assert refusal["bag"] == "BS0000005009" and refusal["why"] == wire.REFUSE_REASONS[1]
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


def close_a_bag(ctl, parcel):
    """Bagging: parcel into a new bag, weighed, closed; returns the bag number."""
    assert ctl.scan(parcel)["beep"] == "ok"
    ctl.weigh(4_000)
    ctl.key("ok")
    return ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]


def test_courier_pickup_counts_only_real_bags(pickup_device):
    hh = pickup_device
    ctl = hh.control
    closed = close_a_bag(ctl, "LZRTS0001")  # this handheld's first bag: BS0000000001
    assert ctl.scan("LZRTS0002")["beep"] == "ok"  # its second, still open
    assert ctl.state()["bag"] == "BS0000000002"
    ctl.key("mode")  # the open bag is left as it is for the courier
    ctl.expect(lambda o: o.get("screen", [""])[0] == "PICKUP")
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"

    def refused(code):
        event = ctl.scan(code)
        assert event["beep"] == "error", event
        return event["code"], event["screen"][2]

    assert refused("LZRTS0003") == (rules.NOT_A_BAG, "Not a bag label")  # a parcel label
    assert refused("BS12") == (rules.NOT_A_BAG, "Not a bag label")
    assert refused("BS0000000003")[0] == rules.NOT_A_BAG  # in its range, never opened here
    assert refused("BS0000000002") == (rules.BAG_OPEN, "Bag still open")
    assert ctl.scan(closed)["beep"] == "ok"  # closed here
    assert refused(closed) == (rules.BAG_SCANNED, "Scanned already")  # not "Already in bag"
    assert ctl.scan("BS0000005004")["beep"] == "ok"  # closed on another handheld: config
    # Not heard of: counted, with a warning (the gateway decides, the receipt says).
    event = ctl.scan("BS0000007777")
    assert (event["beep"], event["code"]) == ("warn", rules.UNKNOWN_BAG)
    assert event["screen"][1:4] == ["3 bags", "8 left to scan", "Unknown bag"]
    assert ctl.state()["bags"] == 3
    scanned = [r["bag"] for r in hh.journal() if r["k"] == "pickup"]
    assert scanned == [closed, "BS0000005004", "BS0000007777"]


def pin_failures(hh):
    path = hh.state_dir / "pin_failures"
    return path.read_text().split() if path.exists() else None


def let_the_lock_pass(hh):
    """Move the lock's end into the past, as if its wait had passed."""
    fails, _ = pin_failures(hh)
    (hh.state_dir / "pin_failures").write_text(f"{fails} 1\n")


def test_wrong_pins_lock_sign_in_for_a_growing_wait(pickup_device):
    hh = pickup_device
    ctl = hh.control
    to_pickup(ctl)
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    for _ in range(4):
        assert ctl.scan("PIN:0000")["code"] == rules.WRONG_PIN
    event = ctl.scan("PIN:0000")  # the 5th wrong PIN in a row
    assert (event["code"], event["screen"][2:]) == (
        rules.PIN_LOCKED,
        ["PIN locked", "retry in 60 s"],
    )
    # Locked: the right PIN too, another badge, leaving the mode and a restart change nothing.
    assert ctl.scan(f"PIN:{PIN}")["code"] == rules.PIN_LOCKED
    press(ctl, "mode", "mode", "mode")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "PICKUP")
    assert ctl.scan("BADGE-042")["beep"] == "ok"
    assert sign_in_with_keys(ctl)["code"] == rules.PIN_LOCKED
    hh.kill()
    ctl = hh.start()
    to_pickup(ctl)
    assert ctl.scan("DRV:D042")["beep"] == "ok"
    assert ctl.scan(f"PIN:{PIN}")["code"] == rules.PIN_LOCKED
    assert not [r for r in hh.journal() if r["k"] == "signin"]
    # After the wait, one more wrong PIN locks twice as long.
    let_the_lock_pass(hh)
    event = ctl.scan("PIN:9999")
    assert (event["code"], event["screen"][3]) == (rules.PIN_LOCKED, "retry in 120 s")
    let_the_lock_pass(hh)
    assert ctl.scan(f"PIN:{PIN}")["beep"] == "ok"  # the right PIN signs in and resets
    assert pin_failures(hh) is None
    assert [r["drv"] for r in hh.journal() if r["k"] == "signin"] == ["D042"]


def listed_bag(line):
    """The bag number on a "<place> <bag number>" line of the list still to scan."""
    place, bag = line.split()
    return int(place), bag


def test_the_sellers_bags_still_to_scan_are_counted_and_scrolled(pickup_device):
    ctl = signed_in(pickup_device)
    screen = screen_after(ctl, "ok")  # the first linked store's handover
    assert screen[:3] == ["PICKUP", "0 bags", "9 left to scan"]
    event = ctl.scan("BS0000005003")
    assert event["beep"] == "ok" and event["screen"][1:4] == [
        "1 bags",
        "8 left to scan",
        "BS0000005003",
    ]
    # up/down scroll the list: each bag of the config's list not scanned yet, once; back at
    # the top, the bag shown last stays (the one "cancel" refuses).
    shown = [listed_bag(screen_after(ctl, "up")[3]) for _ in range(8)]
    assert [place for place, _ in shown] == list(range(1, 9))
    assert {bag for _, bag in shown} == set(OTHER_HANDHELDS_BAGS) - {"BS0000005003"}
    assert screen_after(ctl, "up")[3] == shown[-1][1]
    assert listed_bag(screen_after(ctl, "down")[3]) == shown[-1]


def test_any_bag_of_the_handover_can_be_refused_not_only_the_last(pickup_device):
    hh = pickup_device
    ctl = signed_in(hh)
    for bag in ("BS0000005001", "BS0000005002", "BS0000005003"):
        assert ctl.scan(bag)["beep"] == "ok"
    assert screen_after(ctl, "cancel")[:3] == ["REFUSE", "BS0000005003", "no_goods"]
    # On the refusal screen a scan chooses the bag: the first one, bag overweight.
    event = ctl.scan("BS0000005001")
    assert event["beep"] == "ok" and event["screen"][:3] == ["REFUSE", "BS0000005001", "no_goods"]
    assert screen_after(ctl, "up", "up")[:3] == ["REFUSE", "BS0000005001", "over_limit"]
    ctl.key("ok")
    event = next_beep(ctl)
    assert event["beep"] == "warn"
    # Off the handover, and not back on the list still to scan.
    assert event["screen"][1:4] == ["2 bags", "6 left to scan", "-BS0000005001"]
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
    recs = hh.journal()
    assert all(wire_schema.record_error(r) is None for r in recs)
    (refusal,) = [r for r in recs if r["k"] == "pickup_refuse"]
    assert (refusal["bag"], refusal["why"]) == ("BS0000005001", "over_limit")
    (handover,) = [r for r in recs if r["k"] == "handover"]
    assert handover["bags"] == ["BS0000005002", "BS0000005003"]


def test_no_goods_is_recorded_for_a_listed_bag_that_is_not_there(pickup_device):
    hh = pickup_device
    ctl = signed_in(hh)
    assert ctl.scan("BS0000005001")["beep"] == "ok"
    _, missing = listed_bag(screen_after(ctl, "up")[3])
    assert screen_after(ctl, "cancel")[:3] == ["REFUSE", missing, "no_goods"]
    ctl.key("ok")
    event = next_beep(ctl)
    assert event["beep"] == "warn"
    assert event["screen"][1:4] == ["1 bags", "7 left to scan", "-" + missing]
    assert missing not in [listed_bag(screen_after(ctl, "up")[3])[1] for _ in range(7)]
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
    recs = hh.journal()
    assert all(wire_schema.record_error(r) is None for r in recs)
    # Refused without a pickup scan: the bag was not there.
    assert [r["bag"] for r in recs if r["k"] == "pickup"] == ["BS0000005001"]
    (refusal,) = [r for r in recs if r["k"] == "pickup_refuse"]
    assert (refusal["bag"], refusal["why"], refusal["drv"]) == (missing, "no_goods", "D042")
    (handover,) = [r for r in recs if r["k"] == "handover"]
    assert handover["bags"] == ["BS0000005001"]


def test_with_several_stores_the_driver_chooses_the_seller_first(pickup_device):
    hh = pickup_device
    ctl = signed_in(hh)
    # The bags screen, the seller's id on its 5th line, up/down changing it until ok.
    assert screen_after(ctl, "up")[3:5] == ["seller: up/down", "S2"]
    assert screen_after(ctl, "down")[3:5] == ["seller: up/down", "S1"]
    screen = screen_after(ctl, "down", "ok")
    assert screen[:3] == ["PICKUP", "0 bags", "9 left to scan"] and screen[4] == "S2"
    assert ctl.scan("BS0000005002")["beep"] == "ok"
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "HANDOVER")
    (handover,) = [r for r in hh.journal() if r["k"] == "handover"]
    assert handover["seller"] == "S2"
