"""A refused parcel never reaches the gateway's bag (real gateway, real firmware)."""

from protocol import rules


def test_refused_parcels_never_appear_in_the_gateways_bag(gateway, handhelds):
    ctl = handhelds(gateway, "hh-refusals").control
    for trk in ("LZ200000001CN", "LZ200000002CN"):
        assert ctl.scan(trk)["beep"] == "ok"
    assert ctl.scan("LZ200000001CN")["code"] == rules.DUPLICATE
    assert ctl.scan("L" * 65)["code"] == rules.BAD_BARCODE
    ctl.key("cancel")  # the second parcel out again
    assert ctl.expect(lambda o: "beep" in o)["beep"] == "warn"
    ctl.weigh(900)
    ctl.key("ok")
    bag_no = ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")["screen"][1]
    ctl.wait_synced()
    gateway.wait_applied()
    status, bag = gateway.api("GET", f"/api/bags/{bag_no}")
    assert status == 200
    assert bag["parcels"] == ["LZ200000001CN"]
    assert bag["parcel_count"] == 1
