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

from firmware.app import wire

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
                client = mqtt.Client(
                    mqtt.CallbackAPIVersion.VERSION2,
                    client_id=self.client_id,
                    protocol=mqtt.MQTTv311,
                    clean_session=True,
                )
                if self.url.username:
                    client.username_pw_set(self.url.username, self.url.password)
                if self.url.scheme == "mqtts":
                    client.tls_set()
                default_port = 8883 if self.url.scheme == "mqtts" else 1883
                client.connect_async(
                    self.url.hostname or "127.0.0.1", self.url.port or default_port
                )
                client.loop_start()
                self._client = client
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
