"""On the real firmware: the baggable hubs the gateway sends, FM-49 mixing refused in both
orders, and the simulated board's wall clock (control line `wall`, docs/simulator.md)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from test_handheld_bagging import PARCELS, device, in_bag, refused  # noqa: F401 - the fixture

from protocol import rules

OPEN_TO_FM49 = ["SZ", "YW", "FM-49"]  # the gateway's BAGGABLE_HUBS once FM-49 is opened
CHINA = ZoneInfo("Asia/Shanghai")


def close_bag(ctl):
    ctl.weigh(900)
    ctl.key("ok")
    ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    ctl.weigh(0)


def test_fm49_parcels_and_others_never_share_a_bag_in_either_order(device):  # noqa: F811
    parcels = dict(PARCELS, LZFM49B=["rts", "FM-49", "S1", 0])
    hh = device(baggable_hubs=OPEN_TO_FM49, parcels=parcels)
    ctl = hh.control
    assert ctl.scan("LZFM49")["beep"] == "ok"  # FM-49 first: an FM-49 bag
    refused(ctl, "LZRTS0001", rules.FM49_MIX)
    first = ctl.state()["bag"]
    close_bag(ctl)
    assert ctl.scan("LZRTS0002")["beep"] == "ok"  # another hub first: no FM-49 after it
    refused(ctl, "LZFM49B", rules.FM49_MIX)
    second = ctl.state()["bag"]
    assert (in_bag(hh, first), in_bag(hh, second)) == (["LZFM49"], ["LZRTS0002"])


def test_without_fm49_in_the_setting_an_fm49_parcel_is_not_baggable(device):  # noqa: F811
    ctl = device(baggable_hubs=["SZ", "YW"]).control
    refused(ctl, "LZFM49", rules.HUB_NOT_BAGGABLE)
    ctl = device(baggable_hubs=["SZ"]).control  # the setting, not a constant of the firmware
    refused(ctl, "LZRTS0002", rules.HUB_NOT_BAGGABLE)  # a Yiwu parcel


def test_the_wall_line_sets_the_handhelds_clock_for_the_manuals_dates(device):  # noqa: F811
    hh = device()
    ctl = hh.control
    # The manual's Milkrun example: the bag scanned on Aug 8 at 11:00 (China time).
    at = int(datetime(2026, 8, 8, 11, 0, tzinfo=CHINA).timestamp())
    ctl.send(f"wall {at}")
    assert ctl.scan("LZRTS0001")["beep"] == "ok"
    (record,) = [r for r in hh.journal() if r["k"] == "parcel"]
    assert at <= record["w"] <= at + 5 and record["q"] == 1
    ctl.send("wall soon")
    assert ctl.expect(lambda o: "error" in o)["error"] == "wall takes epoch seconds"
