"""Nothing lost, nothing twice: duplicates, gateway crashes, broker outages."""

import json
import os
import random
import signal
import subprocess
import time

import pytest
from syncstack import Stack

from devkit.wire_device import RawMQTT, WireDevice, record
from protocol import wire, wire_schema


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_each_stored_once(s: Stack, devs, per_device: int) -> None:
    """Every device acknowledged, its records 1..per_device stored once each and applied."""
    for dev in devs:
        assert dev.wait_acked(90), (dev.device_id, dev.acked)
    total = s.query("SELECT count(*), count(DISTINCT device_id || '/' || seq) FROM records")
    assert total == [(len(devs) * per_device, len(devs) * per_device)]
    for dev in devs:
        assert sorted(s.seqs(dev.device_id)) == list(range(1, per_device + 1))
        s.wait_applied(dev.device_id, per_device)


def test_every_record_delivered_three_times_is_stored_once(stack):
    password = stack.provision("hh-dup")
    raw = RawMQTT("127.0.0.1", stack.mqtt_port, "bagscan-hh-dup", "hh-dup", password)
    assert raw.connack == 0
    topic = wire.topic("hh-dup", wire.EVENTS)
    pid = 65530  # the ids wrap past 65535 to 1 on the way
    for first in range(1, 301, 10):
        payload = json.dumps({"v": 1, "r": [record(s) for s in range(first, first + 10)]}).encode()
        raw.publish(topic, payload, pid=pid)  # the original
        raw.publish(topic, payload, pid=pid, dup=True)  # a resend: same id, DUP set
        pid = pid % 65535 + 1
        raw.publish(topic, payload, pid=pid)  # sent again after a reconnect: a fresh id
        pid = pid % 65535 + 1
    _wait(lambda: len(stack.seqs("hh-dup")) >= 300, 30, "300 records")
    time.sleep(0.5)
    assert stack.seqs("hh-dup") == list(range(1, 301))
    stack.wait_applied("hh-dup", 300)


def test_gateway_killed_20_times_during_5000_records_stores_each_once(tmp_path):
    s = Stack("mosquitto", tmp_path)
    try:
        devs = [s.device(f"hh-k{i}", batch=25, ack_timeout=3.0) for i in range(5)]
        rng = random.Random(4)
        for _ in range(20):  # the stream keeps coming while the gateway dies and comes back
            for dev in devs:
                dev.add_parcels(50)
            time.sleep(rng.uniform(0.2, 0.8))
            s.gateway.stop(signal.SIGKILL)
            s.gateway.start()
        _assert_each_stored_once(s, devs, 1000)
    finally:
        s.close()


def test_embedded_broker_gateway_killed_while_a_device_streams(tmp_path):
    s = Stack("embedded", tmp_path)
    try:
        dev = s.device("hh-e", batch=25, ack_timeout=3.0)
        dev.add_parcels(1000)
        for _ in range(3):
            time.sleep(0.7)
            s.gateway.stop(signal.SIGKILL)
            s.gateway.start()
        assert dev.wait_acked(90), dev.acked
        assert sorted(s.seqs("hh-e")) == list(range(1, 1001))
    finally:
        s.close()


def _store_process(gateway) -> int | None:
    """The pid of the gateway's ingest store process (gateway/ingest/writer.py), if running."""
    out = subprocess.run(
        ["pgrep", "-f", "-P", str(gateway.proc.pid), "gateway.ingest.writer"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]) if len(out) == 1 else None


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_store_process_killed_5_times_during_a_stream_stores_each_once(tmp_path):
    s = Stack("mosquitto", tmp_path)
    try:
        devs = [s.device(f"hh-s{i}", batch=25, ack_timeout=3.0) for i in range(3)]
        killed = []
        for _ in range(5):  # batches are in the pipe or half stored when the store dies
            for dev in devs:
                dev.add_parcels(100)
            time.sleep(0.3)
            _wait(lambda: _store_process(s.gateway) not in (None, *killed), 30, "a store")
            killed.append(_store_process(s.gateway))
            os.kill(killed[-1], signal.SIGKILL)
        _assert_each_stored_once(s, devs, 500)
        assert "ingest store process died" in s.gateway.log.read_text()
    finally:
        s.close()


def test_a_killed_gateway_leaves_no_store_process_behind(tmp_path):
    s = Stack("mosquitto", tmp_path)
    try:
        _wait(lambda: _store_process(s.gateway) is not None, 30, "the store process")
        store = _store_process(s.gateway)
        assert store is not None
        s.gateway.stop(signal.SIGKILL)
        _wait(lambda: not _running(store), 15, "the orphaned store process to exit")
    finally:
        s.close()


FUZZ_COUNT = int(os.environ.get("BAGSCAN_FUZZ_COUNT", "100000"))


def _garbage(rng: random.Random, good: bytes) -> bytes:
    """A payload that is not a valid events message (a random mutation may be valid: retry)."""
    while True:
        payload = _mutation(rng, good)
        try:
            body = json.loads(payload.decode("utf-8"))
        except (ValueError, RecursionError):
            return payload
        if len(payload) > wire.MAX_MESSAGE or wire_schema.events_error(body) is not None:
            return payload


def _mutation(rng: random.Random, good: bytes) -> bytes:
    choice = rng.randrange(12)
    if choice == 0:
        return good[: rng.randrange(len(good))]  # truncated JSON
    if choice == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))  # noise
    if choice == 2:
        return b'{"v":1,"r":[{"s":1,"k":"parcel","trk":"\xff\xfe"}]}'  # invalid UTF-8
    if choice == 3:
        return json.dumps({"v": 1, "r": [dict(record(1), trk="x" * 65536)]}).encode()  # 64 KiB
    if choice == 4:
        rec = record(rng.randrange(1, 10**6))
        key = rng.choice(list(rec))
        rec[key] = rng.choice([None, "1", 1.5, [], {}, True, -1, 2**64, "x" * 100])
        return json.dumps({"v": 1, "r": [rec]}).encode()  # a wrong type or range
    if choice == 5:
        return json.dumps({"v": rng.choice([0, 2, "1", None]), "r": [record(1)]}).encode()
    if choice == 6:
        return b"[" * 5000 + b"]" * 5000  # deep nesting
    if choice == 7:
        return json.dumps({"v": 1, "r": [record(2), record(1)]}).encode()  # out of order
    if choice == 8:
        return '{"v":1,"r":[]}'.encode("utf-16")  # valid JSON, wrong encoding
    if choice == 9:
        return json.dumps({"v": 1, "r": [dict(record(1), k="nope")]}).encode()
    if choice == 10:
        return b'{"v":1,"online":"yes"}'  # a bad status on events
    return b"\x00" * rng.randrange(0, 20000)  # zeros, up to past the size limit


def test_malformed_payloads_store_nothing_and_the_gateway_keeps_serving(tmp_path):
    s = Stack("mosquitto", tmp_path)
    try:
        password = s.provision("hh-f")
        raw = RawMQTT("127.0.0.1", s.mqtt_port, "fuzzer", "hh-f", password)
        rng = random.Random(1234)
        good = json.dumps({"v": 1, "r": [record(1)]}).encode()
        topics = [wire.topic("hh-f", wire.EVENTS), wire.topic("hh-f", wire.STATUS),
                  wire.topic("hh-zz", wire.EVENTS), "bagscan/v1/dev/hh-f/events/x",
                  "bagscan/v1/dev/hh-f/ack", "bagscan/v1/other"]  # fmt: skip
        start = time.monotonic()
        for i in range(FUZZ_COUNT):
            topic = topics[0] if i % 3 else rng.choice(topics)
            raw.publish(topic, _garbage(rng, good))
            if i % 2000 == 0:
                assert s.gateway.api("GET", "/api/health")[0] == 200
        # a good message after all that garbage still gets in
        raw.publish(wire.topic("hh-f", wire.EVENTS), good, pid=1)
        _wait(lambda: s.seqs("hh-f") == [1], 120, "the good record after the garbage")
        assert s.query("SELECT count(*) FROM records") == [(1,)]
        assert s.gateway.proc.poll() is None
        assert s.gateway.api("GET", "/api/health")[0] == 200
        print(f"{FUZZ_COUNT} malformed messages in {time.monotonic() - start:.1f} s")
    finally:
        s.close()


@pytest.mark.parametrize("n", [3])
def test_a_gap_waits_until_the_device_fills_it(tmp_path, n):
    s = Stack("embedded", tmp_path)
    try:
        password = s.provision("hh-gap")
        raw = RawMQTT("127.0.0.1", s.mqtt_port, "bagscan-hh-gap", "hh-gap", password)
        topic = wire.topic("hh-gap", wire.EVENTS)
        raw.publish(topic, json.dumps({"v": 1, "r": [record(2), record(3)]}).encode(), pid=1)
        _wait(lambda: s.seqs("hh-gap") == [2, 3], 10, "records after the gap")
        assert s.query("SELECT applied_seq FROM devices WHERE id='hh-gap'") == [(0,)]
        raw.publish(topic, json.dumps({"v": 1, "r": [record(1)]}).encode(), pid=2)
        s.wait_applied("hh-gap", n)
    finally:
        s.close()


def test_wire_device_helper_is_usable():
    assert WireDevice  # imported for the bench; kept importable
