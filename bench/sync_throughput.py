"""Sync throughput: simulated devices -> Mosquitto -> gateway -> SQLite (docs/benchmarks.md).

    .venv/bin/python bench/sync_throughput.py [--records 200000] [--devices 40] [--per-message 40]
        [--rounds 1] [--only ratio|latency|backlog]

Four measurements, each on a fresh Mosquitto (and gateway) on this machine:
  1. count-only: publisher processes send the load; a subscriber only counts records.
  2. end to end: the same load into the gateway (validation, storage, ack after commit);
     records/s from the first publish to the last commit, and the ratio to (1).
  3. latency: devices scanning a steady 1,000 records/s, one record per message; publish ->
     gateway acknowledgement (sent after the commit, so an upper bound of publish -> commit).
  4. backlog: one device back online with 10,000 records in its journal drains them the way
     the firmware does (4 KB batches, at most 3,000 unacknowledged); time until all acked.
"""

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from devkit.wire_device import WireDevice, record
from gateway.ingest.mqtt_client import no_delay
from protocol import wire

# set_tcp_nodelay as in the shipped broker config (deploy/mosquitto/bagscan.conf).
BROKER_EXTRA = os.environ.get("BENCH_BROKER_EXTRA", "allow_anonymous true\nset_tcp_nodelay true\n")


def _publisher(port: int, device_ids: list[str], records: int, per_message: int, go) -> None:
    """One process: pre-encoded messages for its devices, QoS 1, as fast as the broker takes.
    Each device fills bags of its own with parcels of its own, as handhelds do."""
    messages = []
    for device_id in device_ids:
        topic = wire.topic(device_id, wire.EVENTS)
        space = 1 + int("".join(c for c in device_id if c.isdigit()))
        for first in range(1, records + 1, per_message):
            last = min(first + per_message, records + 1)
            recs = [record(s, space=space) for s in range(first, last)]
            messages.append((topic, json.dumps({"v": 1, "r": recs}, separators=(",", ":"))))
    # interleave the devices, as a fleet would
    order = sorted(range(len(messages)), key=lambda i: i % (len(messages) // len(device_ids)))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{os.getpid()}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    go.wait()
    infos = [client.publish(*messages[i], qos=1) for i in order]
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def _run_publishers(port, device_ids, records, per_message, procs=4):
    go = multiprocessing.Event()
    chunks = [device_ids[i::procs] for i in range(procs)]
    ps = [
        multiprocessing.Process(target=_publisher, args=(port, c, records, per_message, go))
        for c in chunks
        if c
    ]
    for p in ps:
        p.start()
    time.sleep(2.0)  # let every process encode its messages and connect
    return go, ps


def count_only(args) -> float:
    broker = Mosquitto(BROKER_EXTRA).start()
    total = args.devices * args.records_per_device
    got = [0]
    done = threading.Event()
    last = [0.0]

    def on_message(_c, _u, msg):
        got[0] += len(json.loads(msg.payload)["r"])  # it parses, as any consumer must
        if got[0] >= total:
            last[0] = time.monotonic()
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="counter")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(wire.topic("+", wire.EVENTS), 1)
    sub.loop_start()
    time.sleep(0.5)
    ids = [f"hh-{i:04d}" for i in range(args.devices)]
    go, ps = _run_publishers(broker.port, ids, args.records_per_device, args.per_message)
    me = psutil.Process()
    cpu_before = me.cpu_times()
    start = time.monotonic()
    go.set()
    done.wait(300)
    cpu_after = me.cpu_times()
    for p in ps:
        p.join()
    sub.loop_stop()
    broker.stop()
    rate = got[0] / (last[0] - start) if done.is_set() else 0.0
    cpu = sum(cpu_after[:2]) - sum(cpu_before[:2])
    print(f"count-only subscriber: {got[0]} records, {rate:,.0f} records/s")
    print(f"  its processor time: {cpu:.2f} s ({cpu / max(got[0], 1) * 1e6:.0f} us/record)")
    return rate


def _stack(tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(BROKER_EXTRA).start()
    gw = Gateway(tmp, mqtt_url=broker.url, extra_env={"BAGSCAN_LOG_LEVEL": "WARNING"}).start()
    return broker, gw


def _count(db: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM records").fetchone()[0]


def end_to_end(args, tmp: Path) -> tuple[float, float]:
    broker, gw = _stack(tmp)
    db = gw.db_url.removeprefix("sqlite:///")
    ids = [f"hh-{i:04d}" for i in range(args.devices)]
    for device_id in ids:
        assert gw.api("POST", "/api/devices", {"device_id": device_id})[0] == 201
    total = len(ids) * args.records_per_device
    go, ps = _run_publishers(broker.port, ids, args.records_per_device, args.per_message)
    cpu_before = gw.cpu_seconds()
    start = time.monotonic()
    go.set()
    n = 0
    while time.monotonic() - start < 600:
        n = _count(db)
        if n >= total:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in gw.cpu_seconds().items()}
    for p in ps:
        p.join()
    with sqlite3.connect(db) as conn:
        applied = conn.execute("SELECT sum(applied_seq) FROM devices").fetchone()[0]
    rate = n / elapsed
    print(f"end to end: {n} records committed in {elapsed:.2f} s = {rate:,.0f} records/s")
    print(f"  applied to bags when the last was committed: {applied} of {total}")
    print(
        "  gateway processor time until then: "
        + ", ".join(f"{k} {v:.2f} s ({v / n * 1e6:.0f} us/record)" for k, v in sorted(cpu.items()))
    )
    while applied < total and time.monotonic() - start < 600:
        time.sleep(0.1)
        with sqlite3.connect(db, timeout=30) as conn:
            applied = conn.execute("SELECT sum(applied_seq) FROM devices").fetchone()[0]
    bags_done = time.monotonic() - start
    print(
        f"  all {applied} applied to bags {bags_done:.2f} s after the first publish "
        f"= {applied / bags_done:,.0f} records/s stored and applied"
    )
    gw.stop()
    broker.stop()
    return rate, elapsed


def latency(args, tmp: Path) -> float:
    broker, gw = _stack(tmp)
    devs = []
    for i in range(20):
        device_id = f"hh-l{i:02d}"
        status, body = gw.api("POST", "/api/devices", {"device_id": device_id})
        dev = WireDevice("127.0.0.1", broker.port, device_id, batch=1, space=i + 1)
        if os.environ.get("BENCH_DEVICE_NODELAY"):
            dev.client.on_socket_open = no_delay
        devs.append(dev.start())
    time.sleep(1.0)
    rate, seconds = 1000, args.latency_seconds
    applied_at: dict[tuple[str, int], float] = {}
    watching = threading.Event()
    watcher = threading.Thread(
        target=_watch_applied, args=(gw.db_url.removeprefix("sqlite:///"), applied_at, watching)
    )
    watcher.start()
    cpu_before = gw.cpu_seconds()
    start = time.monotonic()
    for tick in range(seconds * 100):  # every 10 ms, 10 records over the 20 devices
        for k in range(10):
            devs[(tick * 10 + k) % 20].add_parcels(1)
        time.sleep(max(0.0, start + (tick + 1) / 100 - time.monotonic()))
    for dev in devs:
        dev.wait_acked(30)
    busy = time.monotonic() - start
    time.sleep(1.0)  # the last records applied
    watching.set()
    watcher.join()
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in gw.cpu_seconds().items()}
    lat = []
    behind = []  # ms from a record's acknowledgement (after its commit) until it was applied
    for dev in devs:
        for seq, sent in dev.publish_times.items():
            acked = next((t for t, s in dev.ack_times if s >= seq), None)
            if acked is not None:
                lat.append((acked - sent) * 1000)
                applied = applied_at.get((dev.device_id, seq))
                if applied is not None:
                    behind.append(max(0.0, applied - acked) * 1000)
    for dev in devs:
        dev.stop()
    gw.stop()
    broker.stop()
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    print(
        f"latency at {rate} records/s for {seconds} s: {len(lat)} messages, "
        f"median {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms"
    )
    behind.sort()
    if behind:
        print(
            f"  applied to bags after its acknowledgement: {len(behind)} records, "
            f"p99 {behind[int(len(behind) * 0.99) - 1]:.1f} ms, max {behind[-1]:.1f} ms "
            "(sampled every 5 ms; 0: applied before the ack reached the device)"
        )
    print(
        "  gateway processor time: "
        + ", ".join(f"{k} {v / busy:.0%} of a core" for k, v in sorted(cpu.items()))
    )
    return p99


def _watch_applied(db: str, applied_at: dict, stop: threading.Event) -> None:
    """When each device's records were first seen applied (devices.applied_seq), every 5 ms."""
    seen: dict[str, int] = {}
    with sqlite3.connect(db, timeout=30) as conn:
        while not stop.is_set():
            now = time.monotonic()
            for device_id, seq in conn.execute("SELECT id, applied_seq FROM devices"):
                for s in range(seen.get(device_id, 0) + 1, seq + 1):
                    applied_at[(device_id, s)] = now
                seen[device_id] = max(seq, seen.get(device_id, 0))
            time.sleep(0.005)


def _warm_up(gw, broker) -> None:
    """One record through the whole stack, so that the gateway's store process is up: the
    backlog is timed from a reconnect to a running gateway, not from the gateway's start."""
    gw.api("POST", "/api/devices", {"device_id": "hh-warm"})
    dev = WireDevice("127.0.0.1", broker.port, "hh-warm", batch=1, space=999)
    dev.add_parcels(1)
    dev.start()
    assert dev.wait_acked(60), "the gateway never acknowledged the warm-up record"
    dev.stop()


def backlog(args, tmp: Path) -> float:
    broker, gw = _stack(tmp)
    status, _ = gw.api("POST", "/api/devices", {"device_id": "hh-back"})
    _warm_up(gw, broker)
    # 4 KB batches of about 40 parcel records (the firmware now sends 2 KB ones: app/boot.py
    # _BATCH_BYTES).
    dev = WireDevice("127.0.0.1", broker.port, "hh-back", batch=40, ahead=3000, space=1)
    dev.add_parcels(10_000)
    start = time.monotonic()
    dev.start()
    ok = dev.wait_acked(120)
    elapsed = time.monotonic() - start
    dev.stop()
    gw.stop()
    broker.stop()
    print(f"backlog of 10,000 records drained in {elapsed:.2f} s (all acked: {ok})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records in the load")
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--per-message", type=int, default=40, help="records per message")
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="ratio: count-only and end to end this many times in turn; prints the median",
    )
    parser.add_argument(
        "--only",
        choices=["ratio", "latency", "backlog"],
        action="append",
        help="run only these parts (count-only and end to end are the ratio); default all",
    )
    args = parser.parse_args()
    args.records_per_device = args.records // args.devices
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    print(
        f"load: {args.devices} devices x {args.records_per_device} records, "
        f"{args.per_message} per message, 4 publisher processes, QoS 1"
    )
    parts = args.only or ["ratio", "latency", "backlog"]
    if "ratio" in parts:
        ratios = []
        for n in range(args.rounds):
            base = count_only(args)
            rate, _ = end_to_end(args, tmp / f"e2e{n}")
            ratios.append(rate / base)
            print(f"ratio end to end / count-only: {ratios[-1]:.2f}")
        if args.rounds > 1:
            print(
                f"ratio over {args.rounds} rounds: median {statistics.median(ratios):.2f}, "
                f"min {min(ratios):.2f}, max {max(ratios):.2f}"
            )
    if "latency" in parts:
        latency(args, tmp / "lat")
    if "backlog" in parts:
        backlog(args, tmp / "back")


if __name__ == "__main__":
    main()
