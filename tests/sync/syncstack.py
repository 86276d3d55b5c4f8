"""The sync tests' stack: a gateway behind a broker, devices that speak the wire (the fixture
`stack` in conftest.py starts one per broker kind)."""

import sqlite3
import time
from pathlib import Path

from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from devkit.wire_device import WireDevice


class Stack:
    """A gateway behind a broker (embedded, or a Mosquitto of this test), on free ports."""

    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        self.mosquitto: Mosquitto | None = None
        if kind == "mosquitto":
            self.mosquitto = Mosquitto().start()
            self.gateway = Gateway(
                tmp,
                mqtt_url=self.mosquitto.url,
                extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(self.mosquitto.port)},
            )
            self.mqtt_port = self.mosquitto.port
        else:
            self.gateway = Gateway(tmp)
            self.mqtt_port = self.gateway.mqtt_port
        self.gateway.start()
        self.db_path = self.gateway.db_url.removeprefix("sqlite:///")
        self.devices: list[WireDevice] = []

    def provision(self, device_id: str) -> str:
        status, body = self.gateway.api("POST", "/api/devices", {"device_id": device_id})
        assert status == 201, body
        return body["mqtt"]["password"]

    def device(self, device_id: str, **kwargs) -> WireDevice:
        password = self.provision(device_id)
        dev = WireDevice("127.0.0.1", self.mqtt_port, device_id, password, **kwargs).start()
        self.devices.append(dev)
        return dev

    def query(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return conn.execute(sql, args).fetchall()

    def seqs(self, device_id: str) -> list[int]:
        rows = self.query("SELECT seq FROM records WHERE device_id = ? ORDER BY id", device_id)
        return [r[0] for r in rows]

    def wait_applied(self, device_id: str, seq: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.query("SELECT applied_seq FROM devices WHERE id = ?", device_id)
            if rows and rows[0][0] >= seq:
                return
            time.sleep(0.2)
        raise AssertionError(f"{device_id} applied only {rows} of {seq}")

    def close(self) -> None:
        for dev in self.devices:
            dev.stop()
        self.gateway.stop()
        if self.mosquitto:
            self.mosquitto.stop()
