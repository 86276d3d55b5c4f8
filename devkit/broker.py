"""A private Mosquitto on a free port, and reading the retained config a gateway left on a broker."""

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from devkit.ports import free_port, wait_port
from protocol import wire


class Mosquitto:
    """A private Mosquitto on a free port with an optional extra config."""

    def __init__(self, extra_config: str = ""):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mosq-"))
        self.extra_config = extra_config
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "persistence false\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n" + (self.extra_config or "allow_anonymous true\n")
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with (self.dir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def retained_config(
    port: int, device_id: str, password: str | None = None, timeout: float = 15
) -> bytes:
    """The config message the gateway left on the broker at port for device_id, read as
    that device (its password, on a broker with ACLs) or anonymously (password None)."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bagscan-{device_id}")
    if password is not None:
        client.username_pw_set(device_id, password)

    def on_message(_c, _u, msg):
        got.append(msg.payload)
        arrived.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(wire.topic(device_id, wire.CONFIG), 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert arrived.wait(timeout), "no retained config"
        return got[0]
    finally:
        client.disconnect()
        client.loop_stop()
