"""Change delivery latency to the handhelds (issue 16; docs/benchmarks.md, "Config deltas").

A private Mosquitto and a bagscan-gateway; N seller devices of one account, each an MQTT
client logged in as the device and subscribed to its config topic as the firmware is (QoS 1).
Each round receives one parcel at the hub (POST /api/hub/receipts) and times, per device,
from just before the request to the arrival of the delta that carries the parcel's new entry
(gateway/ingest/config_feed.py). Reports p50, p99 and the worst over devices x rounds.

    .venv/bin/python bench/config_delivery.py --devices 20 --rounds 20
    .venv/bin/python bench/config_delivery.py --devices 200 --rounds 10
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from protocol import wire


class Listener:
    """One device's config topic: when each parcel's delta saying "received" arrived."""

    def __init__(self, device_id: str, port: int, password: str):
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-" + device_id, clean_session=True
        )
        self.client.username_pw_set(device_id, password)
        topic = wire.topic(device_id, wire.CONFIG)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect(host="127.0.0.1", port=port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, msg) -> None:
        now = time.monotonic()
        if msg.retain:
            return
        for trk, entry in json.loads(msg.payload).get("parcels", {}).items():
            if entry[0] == "received":
                with self.lock:
                    self.arrived.setdefault(trk, now)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(devices: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    broker = Mosquitto().start()
    gateway = Gateway(
        tmp, mqtt_url=broker.url, extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(broker.port)}
    ).start()
    listeners: list[Listener] = []
    try:
        status, account = gateway.api("POST", "/api/accounts", {"name": "Bench"})
        store = {"seller_id": "S1", "seller_name": "Bench"}
        gateway.api("POST", "/api/stores", store)
        gateway.api("POST", f"/api/accounts/{account['id']}/stores", store)
        parcels = [f"LZ{i:09d}CN" for i in range(rounds)]
        rows = [
            {"tracking_no": t, "seller_id": "S1", "status": "rts", "hub": "SZ"} for t in parcels
        ]
        gateway.api("POST", "/api/parcels", {"parcels": rows})
        for n in range(devices):
            status, device = gateway.api(
                "POST", "/api/devices", {"device_id": f"hh-{n:03d}", "account_id": account["id"]}
            )
            assert status == 201, device
            listeners.append(Listener(device["device_id"], broker.port, device["mqtt"]["password"]))
        time.sleep(3)  # connected, subscribed, and the import's deltas are past
        latencies: list[float] = []
        missed = 0
        for trk in parcels:
            t0 = time.monotonic()
            status, _ = gateway.api("POST", "/api/hub/receipts", {"parcels": [trk]})
            assert status == 200
            deadline = t0 + 10
            while time.monotonic() < deadline:
                if all(trk in lst.arrived for lst in listeners):
                    break
                time.sleep(0.01)
            for lst in listeners:
                at = lst.arrived.get(trk)
                if at is None:
                    missed += 1
                else:
                    latencies.append(at - t0)
        return {
            "devices": devices,
            "rounds": rounds,
            "samples": len(latencies),
            "missed": missed,
            "p50_ms": round(1000 * statistics.median(latencies)),
            "p99_ms": round(1000 * statistics.quantiles(latencies, n=100)[98]),
            "max_ms": round(1000 * max(latencies)),
        }
    finally:
        for lst in listeners:
            lst.stop()
        gateway.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(run(args.devices, args.rounds)))


if __name__ == "__main__":
    main()
