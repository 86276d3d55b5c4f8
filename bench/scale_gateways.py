"""Scale-out: 1 and 2 gateway instances on one shared subscription, PostgreSQL, Mosquitto.

    .venv/bin/python bench/scale_gateways.py [--instances 1 2] [--records 50000] [--seconds 10]

For each instance count, on a fresh PostgreSQL database (BAGSCAN_TEST_PG, default the
machine's 127.0.0.1:5432) and a fresh Mosquitto:
  1. throughput: 20 devices drain a backlog the way the firmware does (40 records per
     message, at most 3,000 unacknowledged); records/s from the first publish until every
     record is acknowledged (the gateway acknowledges after its commit);
  2. latency: 20 devices scanning a steady 1,000 records/s, one record per message; p99 of
     publish -> acknowledgement, an upper bound of publish -> commit.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("BAGSCAN_TEST_DB", "postgresql")

from harness import Gateway, Mosquitto, scratch_database  # noqa: E402

from bench.sync_device import WireDevice  # noqa: E402

DEVICES = 20


class Cluster:
    def __init__(self, tmp: Path, db_url: str, instances: int):
        self.broker = Mosquitto().start()
        self.gateways = []
        for i in range(instances):
            (tmp / f"gw{i}").mkdir(parents=True, exist_ok=True)
            gw = Gateway(
                tmp / f"gw{i}",
                mqtt_url=self.broker.url,
                db_url=db_url,
                extra_env={
                    "BAGSCAN_LOG_LEVEL": "WARNING",
                    "BAGSCAN_MQTT_SHARE": "bagscan",
                    "BAGSCAN_INSTANCE": f"gw{i}",
                },
            )
            self.gateways.append(gw.start())

    def devices(self, prefix: str, **kwargs) -> list[WireDevice]:
        devs = []
        for i in range(DEVICES):
            status, body = self.gateways[0].api(
                "POST", "/api/devices", {"device_id": f"{prefix}{i:02d}"}
            )
            assert status == 201, body
            devs.append(
                WireDevice("127.0.0.1", self.broker.port, body["device_id"], **kwargs).start()
            )
        time.sleep(1.0)  # connected and subscribed
        return devs

    def stop(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.broker.stop()


def throughput(cluster: Cluster, records: int) -> float:
    devs = cluster.devices("hh-t", batch=40, ahead=3000)
    start = time.monotonic()
    for dev in devs:
        dev.add_parcels(records // DEVICES)
    for dev in devs:
        assert dev.wait_acked(600), dev.device_id
    elapsed = time.monotonic() - start
    for dev in devs:
        dev.stop()
    return records / elapsed


def latency(cluster: Cluster, seconds: int) -> tuple[float, float]:
    devs = cluster.devices("hh-l", batch=1)
    start = time.monotonic()
    for tick in range(seconds * 100):  # every 10 ms, 10 records spread over the devices
        for k in range(10):
            devs[(tick * 10 + k) % DEVICES].add_parcels(1)
        time.sleep(max(0.0, start + (tick + 1) / 100 - time.monotonic()))
    for dev in devs:
        dev.wait_acked(60)
    lat = []
    for dev in devs:
        for seq, sent in dev.publish_times.items():
            acked = next((t for t, s in dev.ack_times if s >= seq), None)
            if acked is not None:
                lat.append((acked - sent) * 1000)
        dev.stop()
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    for n in args.instances:
        with tempfile.TemporaryDirectory() as tmp, scratch_database(Path(tmp)) as db_url:
            cluster = Cluster(Path(tmp), db_url, n)
            try:
                rate = throughput(cluster, args.records)
                median, p99 = latency(cluster, args.seconds)
            finally:
                cluster.stop()
        print(
            f"{n} instance(s): {rate:,.0f} records/s stored and acknowledged; "
            f"at 1,000 records/s publish -> ack median {median:.1f} ms, p99 {p99:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
