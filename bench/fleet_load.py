"""Fleet load: thousands of handhelds' MQTT connections from one asyncio process (issue 20).

    .venv/bin/python bench/fleet_load.py [--devices 10000] [--rate 1000] [--seconds 300]
        [--connect-rate 400]

Against a private Mosquitto run with the shipped configuration (deploy/mosquitto/bagscan.conf:
per-listener password file and ACL written as `flask mqtt-files` writes them, a session per
device login, no silent drops, persistence; only the TLS listener becomes a plain one on a
free port, as no certificate is at hand) and one bagscan-gateway on PostgreSQL
(BAGSCAN_TEST_PG, default 127.0.0.1:5432). Every device is provisioned in the database with a
credential of its own and speaks MQTT 3.1.1 and our wire format over its own TCP connection,
all in this one process (asyncio). The process raises its open-file limit to the hard limit
and gives the broker the same; the count it needs is printed first.

  1. connect: every device connects (CONNECT with its login, SUBSCRIBE to its ack topic),
     at most --connect-rate new connections a second; seconds until all are in.
  2. steady: --rate records/s from random devices, one record per message (QoS 1), for
     --seconds; publish -> the gateway's acknowledgement (after its commit), p50 and p99;
     the share of a core the store process, the gateway's MQTT side and the broker used.
  3. broker restart: Mosquitto is stopped and started again; the devices reconnect as the
     firmware does (firmware/net/mqtt.py: from 0.5 s doubling to 30 s, equal jitter); the
     most connects in any one second, and seconds until all are back.
  4. memory: resident memory of the broker and of the gateway's processes, before the fleet
     connects and with it connected, per connected device.
  5. push: every device is a seller handheld of one account, subscribed to its config topic
     as the firmware is; a parcel of the account's store is cancelled (POST /api/parcels),
     and the config feed's delta with its "cancelled" entry must reach every device: seconds
     from the request until each had it, p50, p99 and the last.
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import secrets
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("BAGSCAN_TEST_DB", "postgresql")

import psutil
from sqlalchemy import insert

from devkit import ROOT
from devkit.database import analyzed, scratch_database
from devkit.gateway_process import Gateway
from devkit.ports import free_port, wait_port
from devkit.wire_device import record
from gateway import create_app, db
from gateway.ingest import acl, mosquitto_files
from gateway.models import Account, Device, Parcel, Store
from gateway.services import devices
from protocol import wire, wire_schema

SHIPPED = ROOT / "deploy" / "mosquitto" / "bagscan.conf"
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0  # firmware/net/mqtt_setup.py
RANGE = 100  # bag numbers per device
STORE = "S1"  # every device's account links this store
PUSHED = "LZ000000001CN"  # its parcel the push phase cancels
METRICS_TOKEN = secrets.token_urlsafe(12)  # the gateway's /metrics, read after the steady part
KEEPALIVE = 300  # the shipped max_keepalive; a PINGREQ goes out well before it runs out


def shipped_config(tmp: Path, device_port: int, gateway_port: int) -> str:
    """deploy/mosquitto/bagscan.conf with its paths in tmp and plain listeners on free ports."""
    out = []
    for line in SHIPPED.read_text().splitlines():
        if line.startswith(("certfile", "keyfile", "log_dest")):
            continue  # no certificate here; the log goes to a file (below)
        line = line.replace("listener 8883", f"listener {device_port} 127.0.0.1")
        line = line.replace("listener 1883 127.0.0.1", f"listener {gateway_port} 127.0.0.1")
        line = line.replace("/etc/mosquitto/", f"{tmp}/").replace("/var/lib/mosquitto/", f"{tmp}/")
        out.append(line)
    out.append(f"log_dest file {tmp}/mosquitto.log")
    # Mosquitto started as root otherwise becomes user mosquitto, who cannot read tmp.
    user = ["user root"] if os.geteuid() == 0 else []
    return "\n".join(user + out) + "\n"


class Broker:
    def __init__(self, tmp: Path, device_port: int, gateway_port: int):
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(shipped_config(tmp, device_port, gateway_port))
        self.port = device_port
        self.gateway_port = gateway_port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)])
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def _packet(kind: int, body: bytes) -> bytes:
    head, n = bytearray([kind]), len(body)
    while True:
        byte, n = n & 0x7F, n >> 7
        head.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(head) + body


def _text(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


class Handheld:
    """One device's MQTT connection: connect, subscribe to its acks, publish records."""

    def __init__(self, fleet: "Fleet", device_id: str, password: str):
        self.fleet = fleet
        self.device_id = device_id
        self.password = password
        self.writer: asyncio.StreamWriter | None = None
        self.up = asyncio.Event()
        self.seq = 0
        self.sent: dict[int, float] = {}  # seq -> when published, until acknowledged
        self._mid = 0

    async def run(self) -> None:
        """Connect, and reconnect with the firmware's backoff, until cancelled."""
        delay = BACKOFF_MIN
        while True:
            await self.fleet.connect_slot()
            try:
                await self._session()
                delay = BACKOFF_MIN
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                pass
            self.up.clear()
            self.writer = None
            half = delay / 2
            await asyncio.sleep(half + random.uniform(0, half))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.fleet.port)
        try:
            flags = 0xC0  # username, password; a persistent session, as the firmware keeps
            body = _text(b"MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE)
            body += _text(self.device_id.encode()) + _text(self.device_id.encode())
            body += _text(self.password.encode())
            writer.write(_packet(0x10, body))
            topics = b"".join(
                _text(wire.topic(self.device_id, name).encode()) + b"\x01"
                for name in (wire.ACK, wire.CONFIG)
            )
            writer.write(_packet(0x82, struct.pack("!H", 1) + topics))
            await writer.drain()
            while True:
                head = (await reader.readexactly(1))[0]
                n = shift = 0
                while True:
                    b = (await reader.readexactly(1))[0]
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                data = await reader.readexactly(n)
                kind = head & 0xF0
                if kind == 0x20 and data[1] != 0:
                    raise ConnectionError(f"{self.device_id}: CONNACK {data[1]}")
                if kind == 0x90:  # SUBACK: connected and listening for acks and configs
                    self.writer = writer
                    self.up.set()
                    self.fleet.connected(self)
                elif kind == 0x30:
                    self._on_publish(head, data, writer)
        finally:
            writer.close()

    def _on_publish(self, head: int, data: bytes, writer: asyncio.StreamWriter) -> None:
        tlen = struct.unpack("!H", data[:2])[0]
        pos = 2 + tlen
        if head & 0x06:  # QoS 1: acknowledge it
            writer.write(_packet(0x40, data[pos : pos + 2]))
            pos += 2
        body = json.loads(data[pos:])
        if data[2 : 2 + tlen].endswith(wire.CONFIG.encode()):
            entry = body.get("parcels", {}).get(PUSHED)
            if entry and entry[0] == "cancelled":
                self.fleet.pushed.setdefault(self.device_id, time.monotonic())
        elif wire.ack_error(body) is None:
            now = time.monotonic()
            for seq in [s for s in self.sent if s <= body["s"]]:
                self.fleet.latencies.append(now - self.sent.pop(seq))

    def publish_one(self) -> bool:
        if self.writer is None:
            return False
        self.seq += 1
        rec = json.dumps(record(self.seq, space=self.fleet.space(self)), separators=(",", ":"))
        payload = wire_schema.events_payload([rec.encode()])
        self._mid = self._mid % 65535 + 1
        topic = wire.topic(self.device_id, wire.EVENTS).encode()
        self.writer.write(_packet(0x32, _text(topic) + struct.pack("!H", self._mid) + payload))
        self.sent[self.seq] = time.monotonic()
        return True

    def ping(self) -> None:
        if self.writer is not None:
            self.writer.write(b"\xc0\x00")


class Fleet:
    def __init__(self, port: int, credentials: dict[str, str], connect_rate: int):
        self.port = port
        self.handhelds = [Handheld(self, d, p) for d, p in credentials.items()]
        self._index = {h.device_id: i for i, h in enumerate(self.handhelds)}
        self.connect_rate = connect_rate
        self.connects: list[float] = []  # when each CONNACK+SUBACK came, reconnects too
        self.latencies: list[float] = []
        self.pushed: dict[str, float] = {}  # device -> when the cancelled parcel reached it
        self.pacing = True  # the first connects only: reconnects follow the backoff alone
        self._tokens: asyncio.Queue[None] = asyncio.Queue(maxsize=max(1, connect_rate // 50))
        self._tasks: list[asyncio.Task] = []

    def space(self, handheld: Handheld) -> int:
        return 1 + self._index[handheld.device_id]

    def connected(self, _handheld: Handheld) -> None:
        self.connects.append(time.monotonic())

    async def connect_slot(self) -> None:
        if self.pacing:
            await self._tokens.get()

    async def _pace(self) -> None:
        """Tokens for new connections: connect_rate a second, in 20 ms steps, never saved up
        beyond one step (a fleet switched on over a shift, not all at one instant)."""
        while True:
            while not self._tokens.full():
                self._tokens.put_nowait(None)
            await asyncio.sleep(0.02)

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE / 3)
            for h in self.handhelds:
                h.ping()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(h.run()) for h in self.handhelds]
        self._tasks.append(asyncio.create_task(self._pace()))
        self._tasks.append(asyncio.create_task(self._pinger()))

    def up(self) -> int:
        return sum(h.up.is_set() for h in self.handhelds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            total += proc.memory_info().rss
            total += sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def cpu_seconds(gateway: Gateway, broker: Broker) -> dict[str, float]:
    """Processor seconds so far of the gateway's two processes and the broker."""
    broker_seconds = sum(psutil.Process(broker.proc.pid).cpu_times()[:2])
    return {**gateway.cpu_seconds(), "broker": broker_seconds}


def provision(db_url: str, n: int) -> dict[str, str]:
    """n seller devices of one account in the database, each with a password of its own
    (stored as the gateway stores it, a Mosquitto hash: gateway/services/devices.py), in one
    insert; the account's store and its parcel PUSHED."""
    db.upgrade(db_url)
    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "bench"})
    credentials = {f"hh-f{i:05d}": secrets.token_urlsafe(18) for i in range(n)}
    with db.transaction(app) as session:
        account = Account(name="Fleet")
        session.add(account)
        session.flush()
        session.add(Store(seller_id=STORE, seller_name="Fleet", account_id=account.id))
        session.add(Parcel(tracking_no=PUSHED, seller_id=STORE, status="rts", hub="SZ"))
        account_id = account.id
    rows = [
        {
            "id": device_id,
            "role": "seller",
            "account_id": account_id,
            "password_hash": devices.mosquitto_hash(password),
            "bag_range_lo": 1 + i * RANGE,
            "bag_range_hi": (i + 1) * RANGE,
            "applied_seq": 0,
            "online": False,
            "created_at": datetime.now(UTC),
        }
        for i, (device_id, password) in enumerate(credentials.items())
    ]
    with db.transaction(app) as session:
        session.execute(insert(Device), rows)
    app.extensions["bagscan.engine"].dispose()
    return credentials


async def wait_until(pred, timeout: float) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def peak_per_second(times: list[float]) -> int:
    per: dict[int, int] = {}
    for t in times:
        per[int(t)] = per.get(int(t), 0) + 1
    return max(per.values(), default=0)


def gateway_figures(gateway: Gateway) -> str:
    """From the gateway's /metrics (gateway/metrics.py): its own share of the acknowledgement's
    wait (the histogram of seconds from a message's receipt to the commit of its records), and
    how many of the records stored are applied to bags."""
    request = urllib.request.Request(
        gateway.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()

    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found[1]) if found else 0.0

    total = value("bagscan_ingest_commit_seconds_count")
    if not total:
        return "no messages"
    bucket = 'bagscan_ingest_commit_seconds_bucket{le="%s"}'
    shares = ", ".join(
        f"{value(re.escape(bucket % le)) / total:.1%} within {le * 1000:.0f} ms"
        for le in (0.025, 0.05, 0.1)
    )
    stored = value("bagscan_ingest_records_stored_total")
    applied = value("bagscan_ingest_records_applied_total")
    return f"receipt -> commit {shares}; {applied:,.0f} of {stored:,.0f} stored records applied"


async def run(args, broker: Broker, gateway: Gateway, credentials: dict[str, str]) -> None:
    gateway_pids = [gateway.proc.pid]
    await asyncio.sleep(5)  # the gateway's store process has started and settled
    base_broker, base_gateway = rss_mb([broker.proc.pid]), rss_mb(gateway_pids)
    fleet = Fleet(broker.port, credentials, args.connect_rate)
    fleet.start()
    took = await wait_until(lambda: fleet.up() == args.devices, 600)
    print(
        f"connect: {args.devices:,} devices in {took:.1f} s "
        f"(paced at {args.connect_rate}/s, peak {peak_per_second(fleet.connects)}/s)",
        flush=True,
    )
    await asyncio.sleep(2)
    mem_broker, mem_gateway = rss_mb([broker.proc.pid]), rss_mb(gateway_pids)
    print(
        f"memory: broker {base_broker:.0f} -> {mem_broker:.0f} MB "
        f"({(mem_broker - base_broker) * 1024 / args.devices:.1f} KB a device), gateway "
        f"{base_gateway:.0f} -> {mem_gateway:.0f} MB "
        f"({(mem_gateway - base_gateway) * 1024 / args.devices:.1f} KB a device)",
        flush=True,
    )

    start, sent, missed = time.monotonic(), 0, 0
    cpu_before = cpu_seconds(gateway, broker)
    rng = random.Random(1)
    while time.monotonic() - start < args.seconds:
        due = int((time.monotonic() - start) * args.rate)
        while sent < due:
            if not rng.choice(fleet.handhelds).publish_one():
                missed += 1
            sent += 1
        await asyncio.sleep(0.005)
    cpu = cpu_seconds(gateway, broker)
    busy = {
        name: (cpu[name] - cpu_before.get(name, 0.0)) / (time.monotonic() - start) for name in cpu
    }
    await asyncio.sleep(5)  # the last acknowledgements
    lat = sorted(fleet.latencies)
    unacked = sum(len(h.sent) for h in fleet.handhelds)
    print(
        f"steady: {sent:,} records in {args.seconds} s ({sent / args.seconds:,.0f}/s) from random "
        f"devices, {unacked} unacknowledged, {missed} not sent (device offline); publish -> ack "
        f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms",
        flush=True,
    )
    print(f"  the gateway: {gateway_figures(gateway)}", flush=True)
    print(
        "  processor time, share of a core: "
        + ", ".join(f"{name} {share:.0%}" for name, share in sorted(busy.items())),
        flush=True,
    )

    fleet.connects.clear()
    fleet.pacing = False
    broker.stop()
    await wait_until(lambda: fleet.up() == 0, 60)
    broker.start()
    restarted = time.monotonic()
    took = await wait_until(lambda: fleet.up() == args.devices, 600)
    print(
        f"broker restart: all {args.devices:,} back {took:.1f} s after the broker; peak "
        f"{peak_per_second([t - restarted for t in fleet.connects])} connects in one second "
        f"(unpaced: the firmware's backoff and jitter alone)",
        flush=True,
    )

    row = {"tracking_no": PUSHED, "seller_id": STORE, "status": "cancelled", "hub": "SZ"}
    asked = time.monotonic()
    status, body = await asyncio.to_thread(gateway.api, "POST", "/api/parcels", {"parcels": [row]})
    if status != 200:
        raise SystemExit(f"cancel: {status} {body}")
    try:
        await wait_until(lambda: len(fleet.pushed) == args.devices, 120)
    except TimeoutError:
        pass
    took = sorted(t - asked for t in fleet.pushed.values())
    print(
        f"push: a parcel cancelled reached {len(took):,} of {args.devices:,} devices; "
        f"p50 {statistics.median(took):.2f} s, p99 {took[int(len(took) * 0.99) - 1]:.2f} s, "
        f"last {took[-1]:.2f} s after the request",
        flush=True,
    )
    await fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="records/s in the steady part")
    parser.add_argument("--seconds", type=int, default=300, help="length of the steady part")
    parser.add_argument("--connect-rate", type=int, default=400, help="new connections/s")
    args = parser.parse_args()
    # A socket per device here and at the broker, plus the broker's own files.
    need = args.devices + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(f"open files: need {need:,}, limit {soft:,} (hard {hard:,})", flush=True)
    if soft < need:
        raise SystemExit(f"raise the hard limit (ulimit -Hn) to at least {need}")
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        scratch_database(Path(tmp_name)) as db_url,
        analyzed(db_url),
    ):
        tmp = Path(tmp_name)
        started = time.monotonic()
        credentials = provision(db_url, args.devices)
        gateway_password = secrets.token_urlsafe(18)
        app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "bench"})
        with db.sessions(app)() as session:
            (tmp / "bagscan.passwd").write_text(
                mosquitto_files.password_file(session, gateway_password)
            )
        app.extensions["bagscan.engine"].dispose()
        (tmp / "bagscan.acl").write_text(acl.mosquitto_acl())
        print(f"provisioned {args.devices:,} devices in {time.monotonic() - started:.0f} s")
        broker = Broker(tmp, free_port(), free_port()).start()
        (tmp / "gw").mkdir()
        gateway = Gateway(
            tmp / "gw",
            mqtt_url=f"mqtt://{acl.GATEWAY_USER}:{gateway_password}@127.0.0.1:{broker.gateway_port}",
            db_url=db_url,
            extra_env={"BAGSCAN_LOG_LEVEL": "WARNING", "BAGSCAN_METRICS_TOKEN": METRICS_TOKEN},
        ).start()
        try:
            asyncio.run(run(args, broker, gateway, credentials))
        finally:
            gateway.stop()
            broker.stop()


if __name__ == "__main__":
    main()
