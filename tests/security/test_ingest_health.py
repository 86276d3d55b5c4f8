"""/api/health is not "ok" while the gateway's ingest is not taking device messages: its broker
is down, or another client keeps taking its MQTT session (issue 21)."""

import json
import threading
import time

import pytest
from broker_under_test import GATEWAY_CLIENT_ID, GATEWAY_PASSWORD, BrokerUnderTest, Client, wait_for

from devkit.wire_device import record
from gateway.ingest import acl, health
from protocol import wire


@pytest.fixture
def mosquitto_broker(tmp_path):
    b = BrokerUnderTest("mosquitto", tmp_path)
    yield b
    b.close()


def test_health_is_not_ok_while_the_broker_is_down(mosquitto_broker):
    b = mosquitto_broker
    assert b.health() == 200
    b.stop_mosquitto()
    wait_for(lambda: b.health() == 503, 10, "health still ok with the broker down")
    status, body = b.gateway.api("GET", "/api/health")
    assert body["error"]["code"] == "INGEST_DOWN"
    b.start_mosquitto()  # same ports
    wait_for(lambda: b.health() == 200, health.LOSS_WINDOW_S + 30, "health never ok again")


def test_health_is_not_ok_while_another_client_keeps_taking_the_ingest_session(
    mosquitto_broker,
):
    """Say a second gateway instance with the same BAGSCAN_INSTANCE (the only clients that may
    use the gateway's client id) reconnects every 0.5 s."""
    b = mosquitto_broker
    assert b.health() == 200
    stop = threading.Event()

    def take_the_session() -> None:
        while not stop.is_set():
            Client(b.local_port, acl.GATEWAY_USER, GATEWAY_PASSWORD, GATEWAY_CLIENT_ID).close()
            time.sleep(0.5)

    thief = threading.Thread(target=take_the_session)
    thief.start()
    try:
        time.sleep(3)
        codes = set()
        for _ in range(10):  # over the next 5 s, never ok
            codes.add(b.health())
            time.sleep(0.5)
        assert codes == {503}
    finally:
        stop.set()
        thief.join()
    # once it stops, the ingest takes device messages again: a device resends what was not
    # acknowledged (a message sent while the thief had deleted the session has no subscriber)
    password = b.provision("hh-a")
    device = Client(b.device_port, "hh-a", password, "bagscan-hh-a")
    events = json.dumps({"v": 1, "r": [record(1)]}).encode()
    deadline = time.monotonic() + 15
    while b.seqs("hh-a") != [1]:
        assert time.monotonic() < deadline, "nothing stored after the session came back"
        device.publish(wire.topic("hh-a", wire.EVENTS), events)
        time.sleep(1)
    device.close()
    wait_for(lambda: b.health() == 200, health.LOSS_WINDOW_S + 15, "health never ok again")
