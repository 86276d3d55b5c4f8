"""The gateway's PUBACKs, written a batch at a time (gateway/ingest/subscriber.py `puback`), reach the
broker: a real Mosquitto redelivers to a persistent session exactly the QoS 1 messages that
were not acknowledged."""

import threading
import time

import paho.mqtt.client as mqtt
import pytest

from devkit.broker import Mosquitto
from gateway.ingest.subscriber import puback

TOPIC = "bagscan/v1/dev/hh-puback/events"


@pytest.fixture
def broker():
    b = Mosquitto().start()
    yield b
    b.stop()


def _session(port: int, received: list, got_all: threading.Event, want: int) -> mqtt.Client:
    """The gateway's kind of session: persistent, manual acks."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="gw-puback",
        protocol=mqtt.MQTTv311,
        clean_session=False,
        manual_ack=True,
    )

    def on_message(_c, _u, msg):
        received.append(msg)
        if len(received) >= want:
            got_all.set()

    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10)
    return client


def _publish(port: int, n: int) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-puback")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for info in [pub.publish(TOPIC, b"%d" % i, qos=1) for i in range(n)]:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()


def _redelivered(port: int, wait: float = 1.5) -> list[bytes]:
    received: list = []
    client = _session(port, received, threading.Event(), 1)
    time.sleep(wait)
    client.disconnect()
    client.loop_stop()
    return [m.payload for m in received]


@pytest.mark.parametrize("acked", [300, 250])
def test_the_broker_redelivers_exactly_what_was_not_acknowledged(broker, acked):
    received: list = []
    got_all = threading.Event()
    client = _session(broker.port, received, got_all, 300)
    _publish(broker.port, 300)
    assert got_all.wait(10)
    puback(client, [m.mid for m in received[:acked]])
    time.sleep(0.5)  # the network thread writes the queued packet
    client.disconnect()
    client.loop_stop()
    # The same persistent session again: the broker sends what it still holds unacknowledged.
    assert sorted(_redelivered(broker.port)) == sorted(b"%d" % i for i in range(acked, 300))
