"""HTTP by gunicorn with several workers; the ingest worker runs once per instance (issue 8)."""

import json
import subprocess
import time

from devkit.broker import retained_config
from devkit.gateway_process import Gateway
from devkit.wire_device import WireDevice, record
from protocol import wire


def test_gunicorn_workers_serve_while_one_ingest_applies_records(tmp_path, database_url):
    gw = Gateway(tmp_path, db_url=database_url, extra_env={"BAGSCAN_HTTP_WORKERS": "3"}).start()
    try:
        # Several requests land on different workers; each answers from the same database.
        for i in range(6):
            status, body = gw.api("POST", "/api/devices", {"device_id": f"hh-g{i}"})
            assert status == 201, body
        # A worker published the device's retained config through the broker.
        config = json.loads(
            retained_config(gw.mqtt_port, body["device_id"], body["mqtt"]["password"])
        )
        assert config["bag_range"] == body["bag_range"]

        dev = WireDevice(
            "127.0.0.1", gw.mqtt_port, body["device_id"], body["mqtt"]["password"]
        ).start()
        bag = wire.bag_number(body["bag_range"][0])
        dev.add([record(1, "bag_open", bag=bag), record(2, "parcel", bag=bag, trk="LZ1CN")])
        assert dev.wait_acked(30)
        dev.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, got = gw.api("GET", f"/api/bags/{bag}")
            if status == 200 and got["parcel_count"] == 1:
                break
            time.sleep(0.2)
        assert got["parcels"] == ["LZ1CN"]

        workers = subprocess.run(
            ["pgrep", "-f", "-P", str(gunicorn_master(gw.proc.pid)), "gunicorn"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        assert len(workers) == 3
    finally:
        gw.stop()
    log = gw.log.read_text()
    assert log.count("ingest connected") == 1, "the ingest must run once, not once per worker"


def gunicorn_master(parent: int) -> int:
    """The gateway's gunicorn child (its other child is the ingest store process)."""
    out = subprocess.run(
        ["pgrep", "-f", "-P", str(parent), "gunicorn"], capture_output=True, text=True
    ).stdout
    return int(out.split()[0])
