"""What docs/protocol.md promises about topics and sessions, on both brokers we ship: the
embedded one (bagscan-gateway without BAGSCAN_MQTT_URL) and Mosquitto with
deploy/mosquitto/bagscan.conf. Each test runs against both (the `broker` fixture)."""

import json
import time

import pytest
from broker_under_test import GATEWAY_CLIENT_ID, wait_for

from devkit.wire_device import record
from gateway import create_app, db
from gateway.errors import Refused
from gateway.ingest import acl
from gateway.services import devices
from protocol import wire

QUIET_S = 3.0  # how long a connection that must get nothing is watched (the issue saw 3 s)


def _events(seq: int) -> bytes:
    return json.dumps({"v": 1, "r": [record(seq)]}).encode()


def _acked(client, device_id: str, seq: int) -> bool:
    ack = wire.topic(device_id, wire.ACK)
    return any(t == ack and json.loads(p).get("s", 0) >= seq for t, p in client.messages)


def _stored_and_acked(broker, device, device_id: str, seq: int, timeout: float = 15) -> None:
    """device (subscribed to its acks) sends record seq: the gateway stores and acknowledges it."""
    device.publish(wire.topic(device_id, wire.EVENTS), _events(seq))
    wait_for(lambda: seq in broker.seqs(device_id), timeout, f"{device_id} {seq} never stored")
    wait_for(lambda: _acked(device, device_id, seq), timeout, f"{device_id} {seq} never acked")


@pytest.fixture
def two_devices(broker, clients):
    """hh-a online with its persistent session subscribed to its config and acks; hh-b
    provisioned. Both have a retained config on the broker."""
    pw_a, pw_b = broker.provision("hh-a"), broker.provision("hh-b")
    a = clients(broker.device_port, "hh-a", pw_a, "bagscan-hh-a", clean_session=False)
    assert a.accepted
    a.subscribe(wire.topic("hh-a", wire.CONFIG))
    a.subscribe(wire.topic("hh-a", wire.ACK))
    wait_for(lambda: a.topics(), 10, "hh-a never got its retained config")
    return a, pw_a, pw_b


def test_a_fresh_connection_gets_no_other_devices_retained_config(broker, clients, two_devices):
    _, _, pw_b = two_devices
    b = clients(broker.device_port, "hh-b", pw_b, "spy-fresh")
    assert b.accepted
    time.sleep(QUIET_S)
    assert b.messages == []


@pytest.mark.parametrize("clean_session", [True, False])
def test_wildcard_and_foreign_subscriptions_get_only_the_devices_own_topics(
    broker, clients, two_devices, clean_session
):
    a, _, pw_b = two_devices
    b = clients(broker.device_port, "hh-b", pw_b, "spy-wild", clean_session=clean_session)
    for topic_filter in (
        "#",
        wire.ROOT + "#",
        wire.topic("+", wire.CONFIG),
        wire.topic("hh-a", wire.CONFIG),
        wire.topic("hh-a", wire.ACK),
        wire.topic("+", wire.EVENTS),
        "$share/spy/" + wire.topic("+", wire.CONFIG),
        wire.topic("hh-b", wire.CONFIG),
    ):
        b.subscribe(topic_filter)
    # live traffic for hh-a while b listens: its events, the gateway's ack and a new config
    _stored_and_acked(broker, a, "hh-a", 1)
    broker.provision("hh-a")
    time.sleep(QUIET_S)
    own = wire.topic("hh-b", wire.CONFIG)
    assert own in b.topics(), "hh-b's own retained config should arrive"
    assert set(b.topics()) == {own}


def test_foreign_publishes_are_dropped(broker, clients, two_devices):
    a, pw_a, pw_b = two_devices
    b = clients(broker.device_port, "hh-b", pw_b, "bagscan-hh-b")
    b.subscribe(wire.topic("hh-b", wire.CONFIG))
    b.subscribe(wire.topic("hh-b", wire.ACK))
    b.subscribe(wire.topic("hh-b", wire.PARCEL))
    wait_for(lambda: b.topics(), 10, "hh-b never got its retained config")
    config_b = b.messages[0][1]
    forged = b'{"v":1,"forged":true}'
    for topic, retain in (
        (wire.topic("hh-b", wire.EVENTS), False),
        (wire.topic("hh-b", wire.STATUS), True),
        (wire.topic("hh-b", wire.ACK), False),
        (wire.topic("hh-b", wire.CONFIG), True),
        (wire.topic("hh-a", wire.ACK), False),
        (wire.topic("hh-a", wire.CONFIG), True),
        (wire.topic("hh-b", wire.PARCEL), False),
    ):
        # a connection per attempt: a broker may close one after a refused publish
        spy = clients(broker.device_port, "hh-a", pw_a, f"forger-{len(topic)}-{retain}")
        spy.publish(topic, _events(1) if topic.endswith("events") else forged, retain=retain)
        spy.close()
    # hh-a's own events still get in (and were sent after the forgeries)
    a2 = clients(broker.device_port, "hh-a", pw_a, "bagscan-hh-a", clean_session=False)
    a2.subscribe(wire.topic("hh-a", wire.ACK))
    _stored_and_acked(broker, a2, "hh-a", 1)
    time.sleep(0.5)
    assert broker.seqs("hh-b") == []
    assert b.messages == [(wire.topic("hh-b", wire.CONFIG), config_b)]
    # the retained configs are still the gateway's
    for device_id, password in (("hh-b", pw_b), ("hh-a", pw_a)):
        fresh = clients(broker.device_port, device_id, password, f"reader-{device_id}")
        fresh.subscribe(wire.topic(device_id, wire.CONFIG))
        wait_for(lambda fresh=fresh: fresh.messages, 10, f"no retained config for {device_id}")
        assert b"forged" not in fresh.messages[0][1]


def test_a_device_asks_about_parcels_and_reads_only_its_own_answers(broker, clients, two_devices):
    """Parcel requests (issue 16): a device's request is answered on its own PARCEL topic; no
    other device reads that answer, asks in its name, or forges an answer."""
    _, pw_a, pw_b = two_devices
    a = clients(broker.device_port, "hh-a", pw_a, "asker-a")
    a.subscribe(wire.topic("hh-a", wire.PARCEL))
    b = clients(broker.device_port, "hh-b", pw_b, "spy-parcel")
    for topic_filter in (
        wire.topic("+", wire.PARCEL),
        wire.topic("hh-a", wire.PARCEL),
        wire.topic("+", wire.REQUEST),
        wire.topic("hh-a", wire.REQUEST),
        wire.topic("hh-b", wire.PARCEL),
    ):
        b.subscribe(topic_filter)
    # hh-b asks in hh-a's name and forges an answer to hh-a: both dropped
    b.publish(wire.topic("hh-a", wire.REQUEST), b"LZ000000001CN")
    b.publish(wire.topic("hh-a", wire.PARCEL), b'{"v":1,"parcels":{"LZ000000001CN":null}}')
    a.publish(wire.topic("hh-a", wire.REQUEST), b"LZ000000002CN")
    answer = wire.topic("hh-a", wire.PARCEL)
    wait_for(lambda: a.messages, 10, "hh-a's request never answered")
    time.sleep(QUIET_S)
    assert a.messages == [(answer, b'{"v":1,"parcels":{"LZ000000002CN":null}}')]
    assert b.messages == []


@pytest.mark.parametrize("kind", [wire.CONFIG, wire.ACK, wire.STATUS, wire.EVENTS])
def test_a_last_will_on_a_foreign_topic_is_dropped(broker, clients, two_devices, kind):
    _, pw_a, pw_b = two_devices
    b = clients(broker.device_port, "hh-b", pw_b, "bagscan-hh-b")
    b.subscribe(wire.topic("hh-b", wire.CONFIG))
    b.subscribe(wire.topic("hh-b", wire.ACK))
    wait_for(lambda: b.topics(), 10, "hh-b never got its retained config")
    forged = _events(1) if kind == wire.EVENTS else b'{"v":1,"forged":true}'
    try:
        a = clients(
            broker.device_port, "hh-a", pw_a, "will-a", will=(wire.topic("hh-b", kind), forged)
        )
    except (OSError, AssertionError):  # refused before a CONNACK: nothing to leave behind
        a = None
    if a is not None and a.accepted:
        a.cut()
    time.sleep(1.5)
    assert broker.seqs("hh-b") == []
    assert all(payload != forged for _, payload in b.messages)
    fresh = clients(broker.device_port, "hh-b", pw_b, "reader-b")
    fresh.subscribe(wire.topic("hh-b", kind))
    time.sleep(1.0)
    assert all(payload != forged for _, payload in fresh.messages)


@pytest.mark.parametrize("clean_session", [True, False])
def test_a_device_cannot_take_the_gateways_session(broker, clients, two_devices, clean_session):
    a, _, pw_b = two_devices
    # a device that keeps connecting with the gateway's client id (the issue saw every 0.5 s)
    for _ in range(6):
        thief = clients(
            broker.device_port, "hh-b", pw_b, GATEWAY_CLIENT_ID, clean_session=clean_session
        )
        time.sleep(0.5)
        thief.close()
    assert broker.health() == 200  # the ingest never lost its session
    _stored_and_acked(broker, a, "hh-a", 1)


@pytest.mark.parametrize("client_id", ["bagscan-hh-a", "hh-a"])
@pytest.mark.parametrize("clean_session", [True, False])
def test_another_devices_client_id_takes_nothing(
    broker, clients, two_devices, client_id, clean_session
):
    a, _, pw_b = two_devices
    b = clients(broker.device_port, "hh-b", pw_b, client_id, clean_session=clean_session)
    time.sleep(1.0)
    assert not a.dropped.is_set(), "hh-b's login took hh-a's connection"
    b.close()
    _stored_and_acked(broker, a, "hh-a", 1)
    assert all(not t.startswith(wire.topic("hh-a", "")) for t in b.topics())


@pytest.mark.parametrize("client_id", [GATEWAY_CLIENT_ID, "bagscan-hh-a", "hh-a"])
@pytest.mark.parametrize(
    "login", ["wrong password", "another device's password", "unknown user", "anonymous"]
)
def test_a_refused_login_touches_no_session(broker, clients, two_devices, client_id, login):
    a, _, pw_b = two_devices
    username, password = {
        "wrong password": ("hh-a", "not-the-password"),
        "another device's password": ("hh-a", pw_b),
        "unknown user": ("hh-zz", pw_b),
        "anonymous": (None, None),
    }[login]
    for clean_session in (True, False):
        try:
            refused = clients(
                broker.device_port, username, password, client_id, clean_session=clean_session
            )
        except (OSError, AssertionError):  # closed before a CONNACK: refused too
            continue
        assert not refused.accepted
    time.sleep(0.5)
    assert not a.dropped.is_set(), "a refused login took hh-a's connection"
    assert broker.health() == 200
    _stored_and_acked(broker, a, "hh-a", 1)


@pytest.mark.parametrize("change", ["replaced", "revoked"])
def test_a_changed_credential_drops_the_live_connection(broker, clients, two_devices, change):
    a, pw_a, _ = two_devices
    if change == "replaced":
        new_password = broker.provision("hh-a")
    else:
        broker.revoke("hh-a")
    assert a.dropped.wait(10), f"hh-a still connected with its {change} password"
    again = clients(broker.device_port, "hh-a", pw_a, "bagscan-hh-a")
    assert not again.accepted
    if change == "replaced":
        assert clients(broker.device_port, "hh-a", new_password, "bagscan-hh-a").accepted


@pytest.mark.parametrize("device_id", [GATEWAY_CLIENT_ID, "bagscan-gateway", "bagscan-pub-x"])
def test_no_device_is_named_like_the_gateway(tmp_path, device_id):
    """Sessions are named by login: a device called bagscan-gw-<instance> would own the
    gateway's. Provisioning refuses such names and neither broker lets them log in."""
    url = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "MQTT_URL": ""})
    db.upgrade(url)
    with db.transaction(app) as session, pytest.raises(Refused) as refused:
        devices.provision(session, device_id, 100)
    assert refused.value.field == "device_id"
    assert not acl.device_login_ok(device_id)
