"""Logins and topic rules: Mosquitto with the files the gateway writes, and the embedded broker."""

import json
import shutil
import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from syncstack import Stack

from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from devkit.wire_device import RawMQTT, record
from gateway import create_app, db
from gateway.ingest import acl
from gateway.services import devices
from protocol import wire

GATEWAY_PASSWORD = "gw-secret-for-tests"


def test_a_generated_hash_is_accepted_by_mosquitto_passwd_format():
    stored = devices.mosquitto_hash("s3cret")
    assert stored.startswith("$7$101$")
    assert devices.check_password(stored, "s3cret")
    assert not devices.check_password(stored, "s3cret!")


@pytest.fixture
def provisioned(tmp_path):
    """An app with two devices, and the files `mqtt-files` wrote for them."""
    url = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "MQTT_URL": ""})
    db.upgrade(url)
    passwords = {}
    with db.transaction(app) as session:
        for device_id in ("hh-a", "hh-b"):
            passwords[device_id] = devices.provision(session, device_id, 100)[1]
    result = app.test_cli_runner().invoke(
        args=[
            "mqtt-files",
            "--passwd", str(tmp_path / "passwd"),
            "--acl", str(tmp_path / "acl"),
            "--gateway-password", GATEWAY_PASSWORD,
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path, passwords


@pytest.fixture
def secure_mosquitto(provisioned):
    tmp, passwords = provisioned
    broker = Mosquitto(
        # as root Mosquitto would drop to user mosquitto, which cannot read pytest's tmp dirs
        f"user root\nallow_anonymous false\npassword_file {tmp / 'passwd'}\nacl_file {tmp / 'acl'}\n"
    ).start()
    yield broker, passwords
    broker.stop()
    shutil.rmtree(broker.dir, ignore_errors=True)


def _connect(port, user, password):
    raw = RawMQTT("127.0.0.1", port, f"t-{user}-{time.monotonic_ns()}", user, password)
    return raw


def test_mosquitto_accepts_the_generated_password_file(secure_mosquitto):
    broker, passwords = secure_mosquitto
    assert _connect(broker.port, "hh-a", passwords["hh-a"]).connack == 0
    assert _connect(broker.port, acl.GATEWAY_USER, GATEWAY_PASSWORD).connack == 0
    assert _connect(broker.port, "hh-a", passwords["hh-b"]).connack == 5  # not authorised


def _refused(raw) -> bool:
    try:
        return raw.connack != 0
    except OSError:
        return True


@pytest.mark.parametrize("user", [None, "hh-+", "hh-#", "+", "#"])
def test_anonymous_and_wildcard_usernames_are_refused_by_mosquitto(secure_mosquitto, user):
    broker, passwords = secure_mosquitto
    try:
        raw = RawMQTT("127.0.0.1", broker.port, "t-anon", user, passwords["hh-a"] if user else None)
    except OSError:
        return  # dropped before CONNACK: refused
    assert raw.connack != 0


class Watcher:
    """The gateway's view: everything published under bagscan/v1/dev/#."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None):
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *_: c.subscribe(wire.ROOT + "#", 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _events(seq: int) -> bytes:
    return json.dumps({"v": 1, "r": [record(seq)]}).encode()


def test_mosquitto_delivers_only_a_devices_own_topics(secure_mosquitto):
    broker, passwords = secure_mosquitto
    watcher = Watcher(broker.port, acl.GATEWAY_USER, GATEWAY_PASSWORD)
    # One connection per attempt: with max_queued_messages 0 (the test broker) Mosquitto
    # 2.0.11 drops a client after a denied publish.
    for topic in (
        wire.topic("hh-b", wire.EVENTS),  # someone else's events
        wire.topic("hh-a", wire.ACK),  # forging our own ack
        wire.topic("hh-a", wire.EVENTS),  # allowed
    ):
        a = _connect(broker.port, "hh-a", passwords["hh-a"])
        assert a.connack == 0
        a.publish(topic, _events(1))
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not watcher.got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    watcher.close()
    assert [t for t, _ in watcher.got] == [wire.topic("hh-a", wire.EVENTS)]


def test_a_device_cannot_read_another_devices_acks(secure_mosquitto):
    broker, passwords = secure_mosquitto
    b = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spy")
    b.username_pw_set("hh-b", passwords["hh-b"])
    got = []
    subscribed = threading.Event()
    b.on_message = lambda _c, _u, m: got.append(m.topic)
    b.on_subscribe = lambda *_: subscribed.set()
    b.connect("127.0.0.1", broker.port)
    b.loop_start()
    b.subscribe([(wire.topic("hh-a", wire.ACK), 1), (wire.ROOT + "#", 1)])
    assert subscribed.wait(5)
    gw = _connect(broker.port, acl.GATEWAY_USER, GATEWAY_PASSWORD)
    gw.publish(wire.topic("hh-a", wire.ACK), b'{"v":1,"s":1}')
    gw.publish(wire.topic("hh-b", wire.ACK), b'{"v":1,"s":1}')
    time.sleep(0.5)
    b.disconnect()
    b.loop_stop()
    assert got == [wire.topic("hh-b", wire.ACK)]


def test_the_acl_rules_match_the_mosquitto_file():
    text = acl.mosquitto_acl()
    assert f"pattern write {wire.ROOT}%u/events" in text
    assert acl.allowed("hh-a", wire.topic("hh-a", wire.EVENTS), "publish")
    assert not acl.allowed("hh-a", wire.topic("hh-b", wire.EVENTS), "publish")
    assert not acl.allowed("hh-a", wire.topic("hh-a", wire.ACK), "publish")
    assert acl.allowed("hh-a", wire.topic("hh-a", wire.CONFIG), "subscribe")
    assert not acl.allowed("hh-a", wire.topic("hh-b", wire.CONFIG), "subscribe")
    assert not acl.allowed("hh-a", wire.ROOT + "#", "subscribe")
    for user in (None, "", "hh-+", "#", "a/b"):
        assert not acl.allowed(user, wire.topic("hh-a", wire.EVENTS), "publish")


def test_embedded_broker_refuses_strangers_and_foreign_topics(tmp_path):
    s = Stack("embedded", tmp_path)
    try:
        pw_a, pw_b = s.provision("hh-a"), s.provision("hh-b")
        port = s.mqtt_port
        for user, password in [(None, None), ("hh-+", pw_a), ("#", pw_a), ("hh-a", pw_b)]:
            try:
                raw = RawMQTT("127.0.0.1", port, "t-x", user, password)
            except OSError:
                continue
            assert raw.connack != 0, user
            raw.close()
        a = RawMQTT("127.0.0.1", port, "t-a", "hh-a", pw_a)
        assert a.connack == 0
        a.publish(wire.topic("hh-b", wire.EVENTS), _events(1), pid=1)
        a.publish("bagscan/v1/dev/+/events", _events(1), pid=2)
        time.sleep(1.5)
        assert s.query("SELECT count(*) FROM records") == [(0,)]
        # and the same device on its own topic gets through
        a2 = RawMQTT("127.0.0.1", port, "t-a2", "hh-a", pw_a)
        a2.publish(wire.topic("hh-a", wire.EVENTS), _events(1), pid=3)
        deadline = time.monotonic() + 10
        while s.seqs("hh-a") != [1] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.seqs("hh-a") == [1]
        assert s.query("SELECT count(*) FROM records WHERE device_id='hh-b'") == [(0,)]
    finally:
        s.close()


def test_gateway_behind_secured_mosquitto_stores_nothing_from_foreign_topics(
    secure_mosquitto, provisioned
):
    broker, passwords = secure_mosquitto
    tmp, _ = provisioned
    gw = Gateway(
        tmp,
        mqtt_url=f"mqtt://{acl.GATEWAY_USER}:{GATEWAY_PASSWORD}@127.0.0.1:{broker.port}",
    )
    gw.db_url = f"sqlite:///{tmp / 'gw.sqlite'}"
    gw.env["BAGSCAN_DATABASE_URL"] = gw.db_url
    gw.start()

    def rows():
        with sqlite3.connect(tmp / "gw.sqlite") as conn:
            return conn.execute("SELECT device_id, seq FROM records ORDER BY seq").fetchall()

    def publish_until_stored(seq: int) -> None:
        # The gateway subscribes a moment after its HTTP port opens: send until it has it.
        deadline = time.monotonic() + 15
        while ("hh-a", seq) not in rows() and time.monotonic() < deadline:
            _connect(broker.port, "hh-a", passwords["hh-a"]).publish(
                wire.topic("hh-a", wire.EVENTS), _events(seq), pid=seq
            )
            time.sleep(0.3)

    try:
        publish_until_stored(1)
        a = _connect(broker.port, "hh-a", passwords["hh-a"])
        a.publish(wire.topic("hh-b", wire.EVENTS), _events(1), pid=7)
        publish_until_stored(2)  # sent after the foreign one, so that one had its chance
        time.sleep(0.5)
        assert rows() == [("hh-a", 1), ("hh-a", 2)]
    finally:
        gw.stop()


def test_the_production_mosquitto_config_starts_and_refuses_strangers(provisioned):
    """deploy/mosquitto/bagscan.conf with its paths and ports moved into a temp dir."""
    import subprocess
    from pathlib import Path

    from devkit import ROOT
    from devkit.ports import free_port, wait_port

    tmp, passwords = provisioned
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(tmp / "k.pem"), "-out", str(tmp / "c.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port, local_port = free_port(), free_port()
    conf = (ROOT / "deploy/mosquitto/bagscan.conf").read_text()
    conf = (
        conf.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
        .replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1")
        .replace("/etc/mosquitto/certs/bagscan.crt", str(tmp / "c.pem"))
        .replace("/etc/mosquitto/certs/bagscan.key", str(tmp / "k.pem"))
        .replace("/etc/mosquitto/bagscan.passwd", str(tmp / "passwd"))
        .replace("/etc/mosquitto/bagscan.acl", str(tmp / "acl"))
        .replace("/var/lib/mosquitto/", str(tmp) + "/")
        .replace("log_dest syslog", f"log_dest file {tmp / 'mosq.log'}")
    )
    path = Path(tmp / "prod.conf")
    path.write_text("user root\n" + conf)
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(path)])
    try:
        wait_port(local_port)
        wait_port(tls_port)
        assert _connect(local_port, acl.GATEWAY_USER, GATEWAY_PASSWORD).connack == 0
        assert _connect(local_port, "hh-a", passwords["hh-a"]).connack == 0
        assert _refused(RawMQTT("127.0.0.1", local_port, "anon"))
    finally:
        proc.terminate()
        proc.wait(10)
