"""A scan on a simulated handheld reaches the gateway's API and admin page (issue 2)."""

from devkit.gateway_process import Gateway


def bag_a_few_parcels(hh, parcels, grams):
    for trk in parcels:
        assert hh.scan(trk)["beep"] == "ok"
    hh.weigh(grams)
    hh.key("ok")
    closed = hh.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
    return closed["screen"][1]


def check_bag_arrived(gateway, hh, bag_no, parcels, grams):
    state = hh.wait_synced()
    assert state["journal_depth"] == 0
    gateway.wait_applied()
    status, bag = gateway.api("GET", f"/api/bags/{bag_no}")
    assert status == 200
    assert bag["parcels"] == parcels
    assert bag["parcel_count"] == len(parcels)
    assert bag["status"] == "awaiting_pickup"
    assert abs(bag["weight_g"] - grams) <= 2


def test_scan_reaches_gateway_through_embedded_broker(gateway, handhelds):
    sim = handhelds(gateway, "hh-embedded")
    parcels = ["LZ000000001CN", "LZ000000002CN", "LZ000000003CN"]
    bag_no = bag_a_few_parcels(sim.control, parcels, 4200)
    check_bag_arrived(gateway, sim.control, bag_no, parcels, 4200)


def test_scan_reaches_gateway_through_mosquitto(tmp_path, mosquitto, handhelds, database_url):
    gw = Gateway(
        tmp_path,
        mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
        extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(mosquitto.port)},
        db_url=database_url,
    ).start()
    try:
        sim = handhelds(gw, "hh-mosquitto")
        parcels = ["LZ100000001CN", "LZ100000002CN"]
        bag_no = bag_a_few_parcels(sim.control, parcels, 800)
        check_bag_arrived(gw, sim.control, bag_no, parcels, 800)
    finally:
        gw.stop()
