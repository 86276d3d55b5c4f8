"""Test harness shared by all test folders: ports, the MicroPython binary, a private
Mosquitto, a gateway process and simulated handhelds. Fixtures live in conftest.py."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from firmware.app import wire

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
# ESP32 without PSRAM leaves about 110 KB to MicroPython; tests run under less.
DEFAULT_HEAP = "100K"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def micropython_path() -> str:
    exe = Path(sys.executable).with_name("micropython")
    found = str(exe) if exe.exists() else shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not installed: run tools/test, which installs it")
    return found


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


TOOLS_LIB = ROOT / "tools" / "lib"
sys.path.insert(0, str(TOOLS_LIB))


# The suite runs on SQLite, and again on PostgreSQL with BAGSCAN_TEST_DB=postgresql
# (tools/test does both). Each test gets a database of its own.
TEST_DB = os.environ.get("BAGSCAN_TEST_DB", "sqlite")
PG_SERVER = os.environ.get("BAGSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(tmp: Path):
    """A new empty database for one test: a SQLite file in tmp, or a PostgreSQL database."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp / ('bagscan-' + os.urandom(3).hex() + '.sqlite')}"
        return
    from sqlalchemy import create_engine, text

    name = "bagscan_test_" + os.urandom(6).hex()
    server = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


class Gateway:
    """A bagscan-gateway process on free ports: embedded broker, or mqtt_url given."""

    def __init__(
        self,
        tmp: Path,
        mqtt_url: str = "",
        extra_env: dict | None = None,
        db_url: str | None = None,
    ):
        self.http_port = free_port()
        self.mqtt_port = free_port()
        self.token = "test-token-" + os.urandom(4).hex()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.db_url = db_url or f"sqlite:///{tmp / 'gateway.sqlite'}"
        self.log = tmp / "gateway.log"
        self.env = dict(
            os.environ,
            BAGSCAN_HTTP_PORT=str(self.http_port),
            BAGSCAN_MQTT_PORT=str(self.mqtt_port),
            BAGSCAN_API_TOKEN=self.token,
            BAGSCAN_DATABASE_URL=self.db_url,
            BAGSCAN_MQTT_URL=mqtt_url,
            **(extra_env or {}),
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Gateway":
        exe = Path(sys.executable).with_name("bagscan-gateway")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.http_port, timeout=30)
        return self

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import gateway_api

        return gateway_api.call(self.url, self.token, method, path, body, timeout=10)

    def wait_applied(self, timeout: float = 30) -> None:
        import gateway_api

        behind = gateway_api.wait_applied(self.url, self.token, timeout)
        assert not behind, f"records stored but not applied: {behind}"


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


class SimHandheld:
    """tools/sim as a subprocess, with its control channel."""

    def __init__(self, gateway: Gateway, device_id: str, state_dir: Path, heap: str | None = None):
        self.gateway = gateway
        self.device_id = device_id
        self.state_dir = state_dir
        self.heap = heap
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.control = None

    def start(self):
        from control import Handheld

        args = [
            sys.executable, str(TOOLS_LIB / "sim.py"),
            "--gateway", self.gateway.url, "--token", self.gateway.token,
            "--device-id", self.device_id, "--control-port", str(self.port),
            "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        if self.heap:
            args += ["--heap", self.heap]
        with (self.state_dir.parent / f"{self.device_id}.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.control = Handheld(self.port)
        return self.control

    def kill(self) -> None:
        """A power cut."""
        if self.control:
            self.control.close()
            self.control = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
