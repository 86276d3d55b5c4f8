"""Bagging on the real firmware in micropython, through the control channel (docs/simulator.md).

The handheld runs without a gateway: its config.json carries the parcel cache the gateway
would push (docs/firmware.md, "Config"), and the MQTT client keeps retrying a closed port.
"""

import time

import pytest

from devkit.handheld import DEFAULT_HEAP, SimHandheld
from devkit.ports import free_port
from protocol import rules, wire

HEAP = DEFAULT_HEAP  # the simulator's heap: an ESP32 without PSRAM
PARCELS = {
    "LZRTS0001": ["rts", "SZ", "S1", 0],
    "LZRTS0002": ["rts", "YW", "S1", 0],
    "LZRTS0003": ["rts", "SZ", "S2", 0],
    "LZPENDING": ["pending", "SZ", "S1", 0],
    "LZCANCEL": ["cancelled", "SZ", "S1", 0],
    "LZRECEIVED": ["received", "SZ", "S1", 0],
    "LZSEABIG": ["rts", "SZ", "S1", 1],
    "LZHONGKONG": ["rts", "HK", "S1", 0],
    "LZOTHERSTORE": ["rts", "SZ", "S9", 0],
    "LZFM49": ["rts", "FM-49", "S1", 0],
}


def config(**extra):
    cfg = {
        "device_id": "hh-test",
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "user": "u", "password": "p"},
        "bag_range": [1, 1000],
        "stores": ["S1", "S2"],
        "parcels": PARCELS,
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def device(tmp_path):
    """Start a handheld: device(**config overrides) -> SimHandheld, started."""
    started = []

    def start(heap=HEAP, env=None, **extra):
        hh = SimHandheld.with_config(tmp_path / f"flash{len(started)}", config(**extra), heap, env)
        started.append(hh)
        hh.start()
        return hh

    yield start
    for hh in started:
        hh.kill()


def in_bag(hh, bag_no):
    """Tracking numbers in bag_no according to the journal (parcel minus parcel_remove)."""
    parcels = []
    for rec in hh.journal():
        if rec.get("bag") != bag_no:
            continue
        if rec["k"] == "parcel":
            parcels.append(rec["trk"])
        elif rec["k"] == "parcel_remove":
            parcels.remove(rec["trk"])
    return parcels


def refused(ctl, code, expected):
    event = ctl.scan(code)
    assert event["beep"] == "error", event
    assert event["code"] == expected, event
    return event


def test_300_parcels_are_accepted_and_the_301st_is_refused(device):
    hh = device()
    ctl = hh.control
    for i in range(rules.MAX_PARCELS):
        assert ctl.scan(f"LZ{i:09d}CN")["beep"] == "ok"
    event = refused(ctl, "LZ999999999CN", rules.BAG_FULL)
    assert event["screen"][2] == "Bag full 300"
    state = ctl.state()
    assert state["bag_count"] == 300
    parcels = in_bag(hh, state["bag"])
    assert len(parcels) == 300 and "LZ999999999CN" not in parcels


def test_50_00_kg_is_accepted_and_50_01_kg_is_refused(device):
    hh = device()
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    ctl.send("weight 50000")
    ok = ctl.expect(lambda o: "beep" in o)
    assert ok["beep"] == "ok" and ok["screen"][3] == "50.00 kg"
    ctl.send("weight 50010")
    event = ctl.expect(lambda o: "beep" in o)
    # "Too heavy" says which limit and by how much.
    assert event["code"] == rules.OVERWEIGHT
    assert event["screen"][2:] == ["Over 50 kg", "over by 10 g"]
    # While the bag weighs too much, no parcel goes in and the bag cannot close.
    refused(ctl, "LZRTS0002", rules.OVERWEIGHT)
    ctl.key("ok")
    event = ctl.expect(lambda o: "beep" in o)
    assert event["code"] == rules.OVERWEIGHT and event["screen"][2:] == [
        "Over 50 kg",
        "over by 10 g",
    ]
    bag = ctl.state()["bag"]
    assert in_bag(hh, bag) == ["LZRTS0001"]
    weighed = [r["g"] for r in hh.journal() if r["k"] == "weigh"]
    assert weighed == [50000]


@pytest.mark.parametrize(
    ("trk", "code"),
    [
        ("LZPENDING", rules.NOT_RTS),
        ("LZCANCEL", rules.CANCELLED),
        ("LZRECEIVED", rules.ALREADY_RECEIVED),
        ("LZSEABIG", rules.SEA_BIG_ITEM),
        ("LZHONGKONG", rules.HUB_NOT_BAGGABLE),
        ("LZFM49", rules.HUB_NOT_BAGGABLE),
        ("LZOTHERSTORE", rules.STORE_NOT_LINKED),
    ],
)
def test_the_parcel_cache_refuses(device, trk, code):
    hh = device()
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    refused(ctl, trk, code)
    state = ctl.state()
    assert state["bag_count"] == 1
    assert in_bag(hh, state["bag"]) == ["LZRTS0001"]


def test_fm49_parcels_do_not_share_a_bag_with_others(device):
    # FM-49 is not baggable today (HUB_NOT_BAGGABLE); if the gateway opens it, FM49_MIX guards.
    hh = device(baggable_hubs=["SZ", "YW", "FM-49"])
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    refused(ctl, "LZFM49", rules.FM49_MIX)
    ctl.key("cancel")  # the SZ parcel out: the bag is empty, FM-49 may go in
    assert ctl.expect(lambda o: "beep" in o)["beep"] == "warn"
    assert ctl.scan("LZFM49")["beep"] == "ok"
    refused(ctl, "LZRTS0002", rules.FM49_MIX)
    assert in_bag(hh, ctl.state()["bag"]) == ["LZFM49"]


def test_duplicate_bad_barcode_and_unknown_parcels(device):
    hh = device(unknown_parcel="refuse")
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    refused(ctl, "LZRTS0001", rules.DUPLICATE)
    refused(ctl, "X" * (wire.MAX_TEXT + 1), rules.BAD_BARCODE)
    refused(ctl, "DIM:12x", rules.BAD_BARCODE)
    refused(ctl, "LZNEVERHEARD", rules.NOT_RTS)  # unknown_parcel: refuse
    assert in_bag(hh, ctl.state()["bag"]) == ["LZRTS0001"]


def test_unknown_parcels_are_accepted_by_default(device):
    ctl = device().control
    assert ctl.scan("LZNEVERHEARD")["beep"] == "ok"


def test_a_refused_size_does_not_become_the_bags_size_and_says_which_limit(device):
    hh = device()
    ctl = hh.control
    # Before a bag is open: refused, and the preset stays the size.
    event = refused(ctl, "DIM:150x30x20", rules.OVERSIZE)
    assert event["screen"] == ["BAGGING", "Bag too big", "side under 120", "over by 31 cm"]
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    assert ctl.state()["size"] == [60, 40, 30]
    assert ctl.scan("DIM:119x30x20")["beep"] == "ok"
    event = refused(ctl, "DIM:120x30x20", rules.OVERSIZE)  # a side of 120 cm is one too many
    assert event["screen"][1:] == ["Bag too big", "side under 120", "over by 1 cm"]
    assert ctl.state()["size"] == [119, 30, 20]
    assert ctl.scan("LZRTS0002")["beep"] == "ok"  # the bag goes on as measured before
    event = refused(ctl, "DIM:100x50x31", rules.OVERSIZE)  # 181 cm in all
    assert event["screen"][1:] == ["Bag too big", "3 sides max 180", "over by 1 cm"]
    assert ctl.scan("DIM:100x50x30")["beep"] == "ok"  # 180 cm: allowed
    assert ctl.scan("LZRTS0003")["beep"] == "ok"
    ctl.weigh(3000)
    ctl.key("ok")
    closed = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    close = [r for r in hh.journal() if r["k"] == "bag_close"]
    assert close[0]["bag"] == closed["screen"][1]
    assert close[0]["dims"] == [100, 50, 30] and close[0]["n"] == 3


def test_after_a_close_the_screen_says_to_print_the_label_and_seal_the_bag(device):
    ctl = device().control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    ctl.weigh(3000)
    ctl.key("ok")
    closed = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    assert closed["beep"] == "ok"
    assert closed["screen"] == ["CLOSED", "BS0000000001", "Print the label", "Seal: cable tie"]


def test_a_new_bag_needs_its_own_weighing_after_the_scale_went_back_near_zero(device):
    hh = device()
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    ctl.weigh(4000)
    ctl.key("ok")
    first = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    # The closed bag is still on the scale: its weight, settling again, is not the next bag's.
    event = ctl.scan("LZRTS0002")
    assert event["beep"] == "ok" and event["screen"][3] == "empty the scale"
    ctl.weigh(4010)
    ctl.key("ok")
    event = ctl.expect(lambda o: "beep" in o)
    assert event["code"] == rules.NO_WEIGHT and event["screen"][3] == "empty the scale"
    # Nor after the mode key went round with the bag still on the scale.
    for _ in range(3):
        ctl.key("mode")
        ctl.expect(lambda o: "screen" in o)
    ctl.key("ok")
    assert ctl.expect(lambda o: "beep" in o)["code"] == rules.NO_WEIGHT
    # Lifted off (near zero), the next bag on the scale is weighed and closes.
    ctl.weigh(15)
    ctl.weigh(3000)
    ctl.key("ok")
    second = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    recs = hh.journal()
    assert [(r["bag"], r["g"]) for r in recs if r["k"] == "weigh"] == [
        (first, 4000),
        (second, 3000),
    ]
    assert [(r["bag"], r["g"]) for r in recs if r["k"] == "bag_close"] == [
        (first, 4000),
        (second, 3000),
    ]


def test_a_parcel_of_a_closed_bag_is_refused_in_the_next(device):
    hh = device()
    ctl = hh.control
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    assert ctl.scan("LZRTS0002")["beep"] == "ok"
    ctl.weigh(1500)
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    refused(ctl, "LZRTS0002", rules.IN_OTHER_BAG)
    assert ctl.scan("LZRTS0003")["beep"] == "ok"
    # The set of recent parcels is on flash: it survives a restart.
    hh.kill()
    ctl = hh.start()
    refused(ctl, "LZRTS0001", rules.IN_OTHER_BAG)
    assert in_bag(hh, ctl.state()["bag"]) == ["LZRTS0003"]


def test_cancel_removes_the_last_parcels(device):
    hh = device()
    ctl = hh.control
    for trk in ("LZRTS0001", "LZRTS0002", "LZRTS0003"):
        assert ctl.scan(trk)["beep"] == "ok"
    ctl.key("cancel")
    assert ctl.expect(lambda o: "beep" in o)["screen"][2] == "-LZRTS0003"
    ctl.key("cancel")
    assert ctl.expect(lambda o: "beep" in o)["screen"][2] == "-LZRTS0002"
    state = ctl.state()
    assert state["bag_count"] == 1
    removes = [r["trk"] for r in hh.journal() if r["k"] == "parcel_remove"]
    assert removes == ["LZRTS0003", "LZRTS0002"]
    assert in_bag(hh, state["bag"]) == ["LZRTS0001"]
    # Removed parcels may go back in; the bag is rebuilt the same after a restart.
    assert ctl.scan("LZRTS0002")["beep"] == "ok"
    hh.kill()
    assert hh.start().state()["bag_count"] == 2


def test_records_carry_boot_ticks_and_wall_across_the_tick_wrap(device):
    period = 2**30
    hh = device(env={"BAGSCAN_TICKS_START": str(period - 1500)})
    ctl = hh.control
    deadline = time.monotonic() + 3.0
    i = 0
    while time.monotonic() < deadline:
        assert ctl.scan(f"LZ{i:09d}CN")["beep"] == "ok"
        i += 1
        time.sleep(0.05)
    recs = [r for r in hh.journal() if r["k"] == "parcel"]
    ticks = [r["t"] for r in recs]
    assert all(0 <= t < period for t in ticks)
    assert ticks[0] > period - 2000 and ticks[-1] < 2000  # wrapped
    # ticks_diff semantics: consecutive records are a few ms apart, never "negative".
    diffs = [
        ((b - a + period // 2) % period) - period // 2
        for a, b in zip(ticks[:-1], ticks[1:], strict=True)
    ]
    assert all(0 <= d < 1000 for d in diffs)
    assert {r["b"] for r in recs} == {1}
    assert all(r["w"] > 1_700_000_000 and r["q"] == 0 for r in recs)


def test_screenshot_saves_the_frame_buffer_as_a_pbm_image(device, tmp_path):
    ctl = device().control

    def screenshot(name):
        path = tmp_path / name
        ctl.send(f"screenshot {path}")
        assert ctl.expect(lambda o: "saved" in o)["saved"] == str(path)
        header, size, *rows = path.read_text().splitlines()
        assert (header, size) == ("P1", "128 64")
        assert len(rows) == 64 and all(len(r) == 128 and set(r) <= {"0", "1"} for r in rows)
        return rows

    home = screenshot("home.pbm")
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    scanned = screenshot("scanned.pbm")
    assert sum(r.count("1") for r in home) > 100  # the home screen's text is lit
    assert scanned != home  # the image follows the screen
