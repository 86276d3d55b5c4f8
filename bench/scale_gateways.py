"""Scale-out: 1 and 2 gateway instances on one broker, PostgreSQL, Mosquitto.

    .venv/bin/python bench/scale_gateways.py [--instances 1 2] [--records 50000] [--seconds 10]
        [--dispatch partition|share]

The instances run with BAGSCAN_MQTT_SHARE (docs/deploy.md): by default each takes the events
of its own devices (BAGSCAN_MQTT_DISPATCH=partition); `--dispatch share` puts them all on the
broker's shared subscription, which Mosquitto hands out round-robin.

For each instance count, on a fresh PostgreSQL database (BAGSCAN_TEST_PG, default the
machine's 127.0.0.1:5432) and a fresh Mosquitto:
  1. throughput: 20 devices drain a backlog the way the firmware does (40 records per
     message, at most 3,000 unacknowledged); records/s from the first publish until every
     record is acknowledged (the gateway acknowledges after its commit);
  2. latency: 20 devices scanning a steady 1,000 records/s, one record per message; p99 of
     publish -> acknowledgement, an upper bound of publish -> commit;
  3. with the partition and 2+ instances, failover: the last instance is SIGKILLed; seconds
     until the others hold all its device buckets (ingest_members).
"""

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BAGSCAN_TEST_DB", "postgresql")

from sqlalchemy import create_engine, text

from devkit.broker import Mosquitto
from devkit.database import analyzed, scratch_database
from devkit.gateway_process import Gateway
from devkit.wire_device import WireDevice
from gateway.ingest import partition

DEVICES = 20


class Cluster:
    def __init__(self, tmp: Path, db_url: str, instances: int, dispatch: str):
        self.broker = Mosquitto().start()
        self.db_url = db_url
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
                    "BAGSCAN_MQTT_DISPATCH": dispatch,
                    "BAGSCAN_INSTANCE": f"gw{i}",
                },
            )
            self.gateways.append(gw.start())

    def provision(self, prefix: str) -> None:
        """DEVICES devices named prefix00...; provisioned before they scan, as handhelds are:
        the instance that owns a device subscribes to its events at its next beat
        (gateway/ingest/partition.py), and what comes before is dropped and resent."""
        for i in range(DEVICES):
            status, body = self.gateways[0].api(
                "POST", "/api/devices", {"device_id": f"{prefix}{i:02d}"}
            )
            assert status == 201, body

    def devices(self, prefix: str, spaces: int, **kwargs) -> list[WireDevice]:
        """DEVICES devices, each filling bags of its own with parcels of its own, as handhelds
        do (its bag range; spaces, spaces + 1, ...): devices that scan the same parcels into
        the same bags are records out of order that the registry replays (issue 15)."""
        devs = [
            WireDevice(
                "127.0.0.1", self.broker.port, f"{prefix}{i:02d}", space=spaces + i, **kwargs
            ).start()
            for i in range(DEVICES)
        ]
        time.sleep(1.0)  # connected and subscribed
        return devs

    def stop(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.broker.stop()


def throughput(cluster: Cluster, records: int) -> float:
    devs = cluster.devices("hh-t", 1, batch=40, ahead=3000)
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
    devs = cluster.devices("hh-l", 1 + DEVICES, batch=1)
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


def failover(cluster: Cluster) -> float:
    """Seconds from SIGKILLing the last instance until the others hold every bucket."""
    engine = create_engine(cluster.db_url)
    survivors = {f"gw{i}" for i in range(len(cluster.gateways) - 1)}
    try:
        killed_at = time.monotonic()
        cluster.gateways[-1].stop(signal.SIGKILL)
        while time.monotonic() - killed_at < 60:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT instance, held FROM ingest_members")).all()
            held = set()
            for name, buckets in rows:
                if name in survivors:
                    held |= set(buckets if isinstance(buckets, list) else json.loads(buckets))
            if held == set(range(partition.BUCKETS)):
                return time.monotonic() - killed_at
            time.sleep(0.1)
        raise RuntimeError("the survivors did not take the dead instance's buckets in 60 s")
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--dispatch", choices=("partition", "share"), default="partition")
    args = parser.parse_args()
    for n in args.instances:
        moved = None
        with (
            tempfile.TemporaryDirectory() as tmp,
            scratch_database(Path(tmp)) as db_url,
            analyzed(db_url),
        ):
            cluster = Cluster(Path(tmp), db_url, n, args.dispatch)
            try:
                cluster.provision("hh-t")
                cluster.provision("hh-l")
                time.sleep(3 * partition.BEAT_EVERY)
                rate = throughput(cluster, args.records)
                median, p99 = latency(cluster, args.seconds)
                if n > 1 and args.dispatch == "partition":
                    moved = failover(cluster)
            finally:
                cluster.stop()
        print(
            f"{n} instance(s), {args.dispatch}: {rate:,.0f} records/s stored and acknowledged; "
            f"at 1,000 records/s publish -> ack median {median:.1f} ms, p99 {p99:.1f} ms"
            + (
                f"; a killed instance's buckets held by the others {moved:.1f} s later"
                if moved
                else ""
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
