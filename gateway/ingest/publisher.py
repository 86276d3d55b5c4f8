"""Publishing from HTTP workers: retained device configs go out through the broker.

The ingest worker publishes with its own MQTT connection in the process that runs it. HTTP
workers of a production server (gunicorn, see gateway.serve) run no ingest, so each gets a
small publisher of its own, connected on first use.
"""

import logging
import os
import threading
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from gateway.ingest import mqtt_client
from protocol import wire

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, url: str, client_id: str):
        self.url = urlsplit(url)
        self.client_id = client_id
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()

    def _connected(self) -> mqtt.Client:
        with self._lock:
            if self._client is None:
                self._client = mqtt_client.client(self.url, self.client_id)
                mqtt_client.start(self._client, self.url)
            return self._client

    def publish_config(self, device_id: str, payload: bytes) -> None:
        # QoS 1 and retained: queued by paho until the connection is up.
        self._connected().publish(wire.topic(device_id, wire.CONFIG), payload, qos=1, retain=True)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


def for_worker(url: str, instance: str) -> Publisher:
    return Publisher(url, f"bagscan-pub-{instance}-{os.getpid()}")
