"""A real handheld scans 1,000 parcels while the broker is down; all arrive once, in order."""

import time

import pytest

PARCELS = 1000
BAG = 250  # parcels per bag (a bag holds at most 300)


def _scan_all(hh) -> list[str]:
    codes = []
    for i in range(PARCELS):
        code = f"LZ{i + 1:09d}CN"
        assert hh.scan(code)["beep"] == "ok", code
        codes.append(code)
        if (i + 1) % BAG == 0:
            hh.weigh(5000 + i)
            hh.key("ok")
            hh.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
            hh.weigh(0)
    return codes


@pytest.mark.slow
def test_broker_down_while_1000_parcels_are_scanned(stack, handhelds):
    sim = handhelds(stack.gateway, "hh-outage")
    hh = sim.control
    hh.wait_synced(30)
    # The broker goes away: Mosquitto itself, or the gateway process that embeds it.
    if stack.mosquitto:
        stack.mosquitto.stop()
    else:
        stack.gateway.stop()
    started = time.monotonic()
    codes = _scan_all(hh)
    assert hh.state()["journal_depth"] >= PARCELS  # all still on the device
    if stack.mosquitto:
        stack.mosquitto.start()  # same port, empty: persistence is off in the test broker
    else:
        stack.gateway.start()
    hh.wait_synced(120)
    print(f"scanned and synced in {time.monotonic() - started:.1f} s")
    rows = stack.query(
        "SELECT body FROM records WHERE device_id = 'hh-outage' AND kind = 'parcel' ORDER BY seq"
    )
    import json

    assert [json.loads(r[0])["trk"] for r in rows] == codes
    dup = stack.query("SELECT count(*) - count(DISTINCT seq) FROM records")
    assert dup == [(0,)]
    (last,) = stack.query("SELECT max(seq) FROM records WHERE device_id = 'hh-outage'")[0]
    stack.wait_applied("hh-outage", last, timeout=120)
    assert stack.query("SELECT count(*) FROM bag_parcels") == [(PARCELS,)]
