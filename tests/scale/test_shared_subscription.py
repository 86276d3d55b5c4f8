"""Several gateway instances on one broker keep every record exactly once (issues 8, 20).

Devices stream bags of 48 parcels into gateway instances that split the devices among
themselves (BAGSCAN_MQTT_SHARE, gateway/ingest/partition.py) on one Mosquitto and one
database; instances are SIGKILLed and added mid-stream. The devices resend what was not
acknowledged, as the firmware does. Every record must be stored once, and the bags must be
those a single gateway builds; the live instances, and only they, must hold the device
buckets at the end (checked against BAGSCAN_MQTT_DISPATCH=share, where none are held, this
fails).
"""

import json
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from devkit import database
from devkit.broker import Mosquitto
from devkit.database import scratch_database
from devkit.gateway_process import Gateway
from devkit.wire_device import WireDevice, record
from gateway.ingest import partition
from protocol import wire

DEVICES = 20
BAGS = 10  # per device, each of open + 48 parcels + close
PARCELS_PER_BAG = 48
RECORDS_PER_BAG = PARCELS_PER_BAG + 2

# Several instances run on PostgreSQL whatever the suite's database (the gateway refuses
# BAGSCAN_MQTT_SHARE on SQLite: docs/deploy.md), so tools/test runs these once, in its
# PostgreSQL pass.
pytestmark = pytest.mark.postgresql


def device_stream(device_index: int, first_serial: int, bags: int) -> list[dict]:
    recs: list[dict] = []
    for b in range(bags):
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


def _gateway(tmp: Path, mosquitto: Mosquitto, db_url: str, name: str) -> Gateway:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    return Gateway(
        tmp / name,
        mqtt_url=mosquitto.url,
        db_url=db_url,
        extra_env={
            "BAGSCAN_DEVICE_MQTT_PORT": str(mosquitto.port),
            "BAGSCAN_MQTT_SHARE": "bagscan",
            "BAGSCAN_INSTANCE": name,
        },
    )


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _held(engine) -> dict[str, set[int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT instance, held FROM ingest_members")).all()
    return {name: set(held if isinstance(held, list) else json.loads(held)) for name, held in rows}


def _split_among(engine, names: set[str]):
    """The buckets held by exactly the instances named, each bucket by one of them."""
    held = _held(engine)
    if set(held) - {n for n in held if not held[n]} - names:
        return None  # another instance still holds buckets
    parts = [held.get(n, set()) for n in names]
    if not all(parts) or sum(map(len, parts)) != partition.BUCKETS:
        return None
    return set().union(*parts) == set(range(partition.BUCKETS))


def run_stream(
    tmp, db_url: str, instances: int, kill: int = 0, add: int = 0, devices=DEVICES, bags=BAGS
) -> list[tuple]:
    """The stream in thirds: the first to `instances` instances, the second after `kill` of
    them were SIGKILLed, the last after `add` more were started."""
    per_device = bags * RECORDS_PER_BAG
    mosquitto = Mosquitto().start()
    gateways = [_gateway(tmp, mosquitto, db_url, f"gw{i}") for i in range(instances)]
    handhelds: list[WireDevice] = []
    engine = create_engine(db_url)
    try:
        for gw in gateways:
            gw.start()
        streams = []
        for i in range(devices):
            status, body = gateways[0].api("POST", "/api/devices", {"device_id": f"hh-s{i:02d}"})
            assert status == 201, body
            dev = WireDevice(
                "127.0.0.1", mosquitto.port, body["device_id"], body["mqtt"]["password"],
                batch=20, ack_timeout=3.0,
            ).start()  # fmt: skip
            handhelds.append(dev)
            streams.append(device_stream(i, body["bag_range"][0], bags))
        thirds = [per_device // 3, 2 * per_device // 3, per_device]
        for dev, stream in zip(handhelds, streams, strict=True):
            dev.add(stream[: thirds[0]])
        if kill:
            time.sleep(0.5)  # the first third is on its way through the instances
            for gw in gateways[instances - kill :]:
                gw.stop(signal.SIGKILL)
        for dev, stream in zip(handhelds, streams, strict=True):
            dev.add(stream[thirds[0] : thirds[1]])
        live = {f"gw{i}" for i in range(instances - kill)}
        for i in range(instances, instances + add):
            time.sleep(0.5)
            gateways.append(_gateway(tmp, mosquitto, db_url, f"gw{i}").start())
            live.add(f"gw{i}")
        for dev, stream in zip(handhelds, streams, strict=True):
            dev.add(stream[thirds[1] :])
        for dev in handhelds:
            assert dev.wait_acked(180), (dev.device_id, dev.acked)
        if instances > 1:
            # The live instances, and only they, hold the buckets, each bucket once. The
            # killed ones' buckets moved, as the added one took its share.
            _wait(lambda: _split_among(engine, live), 30, f"the buckets split among {live}")
        # Acknowledged means stored; applying to bags may trail it under load.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                applied = conn.execute(text("SELECT min(applied_seq) FROM devices")).scalar_one()
            if applied == per_device:
                break
            time.sleep(0.5)
        assert applied == per_device
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT device_id || '/' || seq) FROM records")
            ).one()
            assert (rows, distinct) == (devices * per_device,) * 2
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
        for dev in handhelds:
            dev.stop()
        for gw in gateways:
            gw.stop(signal.SIGKILL)
        mosquitto.stop()
        engine.dispose()


def _as_one_gateway(rows: list[tuple], bags: int) -> None:
    """What a single gateway makes of the stream: every bag closed with its 48 parcels."""
    assert len(rows) == bags
    assert all(
        status == "awaiting_pickup" and n == m == PARCELS_PER_BAG for _, status, n, _, m in rows
    )


def test_two_gateways_one_killed_store_each_record_once_like_one_gateway(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "TEST_DB", "postgresql")
    with scratch_database(tmp_path) as shared:
        two = run_stream(tmp_path / "two", shared, instances=2, kill=1)
    with scratch_database(tmp_path) as single:
        one = run_stream(tmp_path / "one", single, instances=1)
    _as_one_gateway(one, DEVICES * BAGS)
    assert two == one


def test_three_gateways_one_killed_one_added_store_each_record_once(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "TEST_DB", "postgresql")
    with database.scratch_database(tmp_path) as shared:
        # 3,000 records: four instances and their store processes share the machine.
        rows = run_stream(
            tmp_path / "three", shared, instances=3, kill=1, add=1, devices=12, bags=5
        )
    _as_one_gateway(rows, 12 * 5)
