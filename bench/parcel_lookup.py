"""Reply time of the online parcel lookup (issue 16; docs/benchmarks.md, "Parcel requests").

A private Mosquitto and a bagscan-gateway (SQLite) holding PARCELS parcels of two stores, one
of them linked to the account; N seller devices, each an MQTT client logged in as the device,
subscribed to its parcel topic and asking about a parcel every PERIOD seconds (a scan per
second is faster than a person bags), staggered over the period, as the firmware does
(firmware/app/sync.py request: the tracking number on its request topic, QoS 0). The time is
from just before the publish to the arrival of the answer (gateway/ingest/parcel_lookup.py).
Asking starts --settle seconds after the import (default: once the config feed's OVERLAP has
passed, so the feed no longer reads the import's rows at every tick: the steady state).
Reports p50, p99 and the worst; an answer missing after 2 s counts as missed.

    .venv/bin/python bench/parcel_lookup.py --devices 200 --seconds 30
    .venv/bin/python bench/parcel_lookup.py --devices 20 --seconds 30
    .venv/bin/python bench/parcel_lookup.py --devices 20 --seconds 30 --settle 0
"""

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from gateway.ingest.config_feed import OVERLAP
from protocol import wire

PARCELS = 50_000
PERIOD = 1.0  # seconds between one device's requests
MISSED_AFTER = 2.0


class Asker:
    """One device: its requests' send times and its answers' arrival times, by tracking no."""

    def __init__(self, device_id: str, port: int, password: str):
        self.device_id = device_id
        self.sent: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-" + device_id, clean_session=True
        )
        self.client.username_pw_set(device_id, password)
        topic = wire.topic(device_id, wire.PARCEL)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 0)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host="127.0.0.1", port=port)
        self.client.loop_start()

    def ask(self, trk: str) -> None:
        with self.lock:
            self.sent[trk] = time.monotonic()
        self.client.publish(wire.topic(self.device_id, wire.REQUEST), trk.encode(), qos=0)

    def _on_message(self, _client, _userdata, msg) -> None:
        now = time.monotonic()
        for trk in json.loads(msg.payload)["parcels"]:
            with self.lock:
                self.answered.setdefault(trk, now)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(devices: int, seconds: float, settle: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    broker = Mosquitto().start()
    gateway = Gateway(
        tmp, mqtt_url=broker.url, extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(broker.port)}
    ).start()
    askers: list[Asker] = []
    try:
        status, account = gateway.api("POST", "/api/accounts", {"name": "Bench"})
        for seller in ("S1", "S2"):
            gateway.api("POST", "/api/stores", {"seller_id": seller, "seller_name": seller})
        store = {"seller_id": "S1", "seller_name": "S1"}
        gateway.api("POST", f"/api/accounts/{account['id']}/stores", store)
        parcels = [f"LZ{i:09d}CN" for i in range(PARCELS)]
        for at in range(0, PARCELS, 5_000):
            rows = [
                {"tracking_no": t, "seller_id": f"S{1 + i % 2}", "status": "rts", "hub": "SZ"}
                for i, t in enumerate(parcels[at : at + 5_000])
            ]
            assert gateway.api("POST", "/api/parcels", {"parcels": rows})[0] == 200
        imported = time.monotonic()
        for n in range(devices):
            status, device = gateway.api(
                "POST", "/api/devices", {"device_id": f"hh-{n:03d}", "account_id": account["id"]}
            )
            assert status == 201, device
            askers.append(Asker(device["device_id"], broker.port, device["mqtt"]["password"]))
        for asker in askers:
            assert asker.subscribed.wait(30), asker.device_id
        time.sleep(max(3.0, imported + settle - time.monotonic()))  # and the full configs
        rng = random.Random(16)
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            # Device i asks at start + k * PERIOD + i * PERIOD / devices.
            due = start + (n // devices) * PERIOD + (n % devices) * PERIOD / devices
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            askers[n % devices].ask(rng.choice(parcels))
            n += 1
        time.sleep(MISSED_AFTER)
        latencies: list[float] = []
        missed = 0
        for asker in askers:
            with asker.lock:
                for trk, sent in asker.sent.items():
                    got = asker.answered.get(trk)
                    if got is None or got - sent > MISSED_AFTER:
                        missed += 1
                    else:
                        latencies.append(got - sent)
        return {
            "devices": devices,
            "parcels": PARCELS,
            "asked_after_import_s": round(time.monotonic() - imported - seconds - MISSED_AFTER),
            "requests_per_s": round(n / seconds),
            "samples": len(latencies),
            "missed": missed,
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * statistics.quantiles(latencies, n=100)[98], 1),
            "max_ms": round(1000 * max(latencies), 1),
        }
    finally:
        for asker in askers:
            asker.stop()
        gateway.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--settle", type=float, default=OVERLAP.total_seconds() + 2)
    args = parser.parse_args()
    print(json.dumps(run(args.devices, args.seconds, args.settle)))


if __name__ == "__main__":
    main()
