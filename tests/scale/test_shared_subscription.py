"""Several gateways on one shared subscription keep every record exactly once (issue 8).

20 devices stream 10,000 records (bags of 48 parcels) into two gateway instances that share
`$share/bagscan/...` on one Mosquitto and one database; one instance is SIGKILLed halfway and
not restarted. The devices resend what was not acknowledged, as the firmware does. The result
must equal a run of the same stream through a single gateway.
"""

import signal
import time

from harness import Gateway, Mosquitto, scratch_database
from sqlalchemy import create_engine, text

from bench.sync_device import WireDevice, record
from firmware.app import wire

DEVICES = 20
RECORDS_PER_DEVICE = 500  # 10 bags of open + 48 parcels + close
PARCELS_PER_BAG = 48


def device_stream(device_index: int, first_serial: int) -> list[dict]:
    recs: list[dict] = []
    for b in range(RECORDS_PER_DEVICE // (PARCELS_PER_BAG + 2)):
        bag = wire.bag_number(first_serial + b)
        recs.append(record(len(recs) + 1, "bag_open", bag=bag))
        for p in range(PARCELS_PER_BAG):
            trk = f"LZ{device_index:03d}{b:03d}{p:03d}CN"
            recs.append(record(len(recs) + 1, "parcel", bag=bag, trk=trk))
        grams = 1000 + 37 * (device_index * 10 + b)
        recs.append(
            record(
                len(recs) + 1, "bag_close", bag=bag, n=PARCELS_PER_BAG, g=grams, dims=[60, 40, 30]
            )
        )
    return recs


def run_stream(tmp, db_url: str, instances: int, kill_one: bool) -> list[tuple]:
    mosquitto = Mosquitto().start()
    gateways = [
        Gateway(
            tmp / f"gw{i}",
            mqtt_url=mosquitto.url,
            db_url=db_url,
            extra_env={
                "BAGSCAN_DEVICE_MQTT_PORT": str(mosquitto.port),
                "BAGSCAN_MQTT_SHARE": "bagscan",
                "BAGSCAN_INSTANCE": f"gw{i}",
            },
        )
        for i in range(instances)
    ]
    devices: list[WireDevice] = []
    engine = create_engine(db_url)
    try:
        for gw in gateways:
            (tmp / gw.env["BAGSCAN_INSTANCE"]).mkdir(parents=True, exist_ok=True)
            gw.start()
        streams = []
        for i in range(DEVICES):
            status, body = gateways[0].api("POST", "/api/devices", {"device_id": f"hh-s{i:02d}"})
            assert status == 201, body
            dev = WireDevice(
                "127.0.0.1", mosquitto.port, body["device_id"], body["mqtt"]["password"],
                batch=20, ack_timeout=3.0,
            ).start()  # fmt: skip
            devices.append(dev)
            streams.append(device_stream(i, body["bag_range"][0]))
        half = RECORDS_PER_DEVICE // 2
        for dev, stream in zip(devices, streams, strict=True):
            dev.add(stream[:half])
        if kill_one:
            time.sleep(0.5)  # the first halves are on their way through both instances
            gateways[-1].stop(signal.SIGKILL)
        for dev, stream in zip(devices, streams, strict=True):
            dev.add(stream[half:])
        for dev in devices:
            assert dev.wait_acked(180), (dev.device_id, dev.acked)
        # Acknowledged means stored; applying to bags may trail it under load.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                applied = conn.execute(text("SELECT min(applied_seq) FROM devices")).scalar_one()
            if applied == RECORDS_PER_DEVICE:
                break
            time.sleep(0.5)
        assert applied == RECORDS_PER_DEVICE
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT device_id || '/' || seq) FROM records")
            ).one()
            assert (rows, distinct) == (DEVICES * RECORDS_PER_DEVICE,) * 2
            return [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT b.bag_no, b.status, b.parcel_count, b.weight_g, "
                        "(SELECT count(*) FROM bag_parcels m WHERE m.bag_id = b.id) "
                        "FROM bags b ORDER BY b.bag_no"
                    )
                )
            ]
    finally:
        for dev in devices:
            dev.stop()
        for gw in gateways:
            gw.stop(signal.SIGKILL)
        mosquitto.stop()
        engine.dispose()


def test_two_gateways_one_killed_store_each_record_once_like_one_gateway(tmp_path):
    with scratch_database(tmp_path) as shared:
        two = run_stream(tmp_path / "two", shared, instances=2, kill_one=True)
    with scratch_database(tmp_path) as single:
        one = run_stream(tmp_path / "one", single, instances=1, kill_one=False)
    assert len(one) == DEVICES * RECORDS_PER_DEVICE // (PARCELS_PER_BAG + 2)
    assert all(
        status == "awaiting_pickup" and n == m == PARCELS_PER_BAG for _, status, n, _, m in one
    )
    assert two == one
