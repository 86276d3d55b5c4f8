"""The broker under test: the embedded one as bagscan-gateway starts it, or Mosquitto with the
shipped deploy/mosquitto/bagscan.conf and the files `flask --app gateway mqtt-files` writes,
each with a gateway in front of a database of its own; and an MQTT client that records what
it gets. The fixtures are in conftest.py."""

import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from devkit.gateway_process import Gateway
from devkit.ports import free_port, wait_port
from gateway import create_app, db
from gateway.ingest import acl

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = "sec"
GATEWAY_CLIENT_ID = f"bagscan-gw-{INSTANCE}"
GATEWAY_PASSWORD = "gw-secret-for-tests"


def shipped_mosquitto_conf(
    tmp: Path, device_port: int, local_port: int, certs: Path | None = None
) -> str:
    """deploy/mosquitto/bagscan.conf with its ports and paths moved into tmp. The device
    listener keeps TLS with certs (a folder holding bagscan.crt and bagscan.key), or without
    them loses its certificate lines only."""
    conf = (ROOT / "deploy/mosquitto/bagscan.conf").read_text()
    for old, new in [
        ("listener 8883", f"listener {device_port} 127.0.0.1"),
        ("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1"),
        ("/etc/mosquitto/bagscan.passwd", str(tmp / "passwd")),
        ("/etc/mosquitto/bagscan.acl", str(tmp / "acl")),
        ("/var/lib/mosquitto/", f"{tmp}/"),
        ("log_dest syslog", f"log_dest file {tmp / 'mosquitto.log'}"),
    ]:
        assert old in conf, old
        conf = conf.replace(old, new)
    if certs is not None:
        conf = conf.replace("/etc/mosquitto/certs/", f"{certs}/")
    lines = [
        line
        for line in conf.splitlines()
        if certs is not None or not line.startswith(("certfile", "keyfile"))
    ]
    # as root Mosquitto would drop to user mosquitto, which cannot read pytest's tmp dirs
    return "user root\n" + "\n".join(lines) + "\n"


class BrokerUnderTest:
    """A gateway and its broker; devices are provisioned through the gateway's API."""

    def __init__(self, kind: str, tmp: Path, certs: Path | None = None):
        self.kind = kind
        self.tmp = tmp
        self.db_url = f"sqlite:///{tmp / 'gateway.sqlite'}"
        self.mosquitto: subprocess.Popen | None = None
        env = {"BAGSCAN_INSTANCE": INSTANCE}
        if kind == "embedded":
            self.gateway = Gateway(tmp, extra_env=env, db_url=self.db_url)
            self.device_port = self.gateway.mqtt_port
        else:
            db.upgrade(self.db_url)
            self.write_mqtt_files()
            self.device_port, self.local_port = free_port(), free_port()
            conf = tmp / "bagscan.conf"
            conf.write_text(shipped_mosquitto_conf(tmp, self.device_port, self.local_port, certs))
            self.start_mosquitto()
            env["BAGSCAN_DEVICE_MQTT_PORT"] = str(self.device_port)
            self.gateway = Gateway(
                tmp,
                mqtt_url=f"mqtt://{acl.GATEWAY_USER}:{GATEWAY_PASSWORD}@127.0.0.1:{self.local_port}",
                extra_env=env,
                db_url=self.db_url,
            )
        self.gateway.start()
        self.wait_healthy()

    def start_mosquitto(self) -> None:
        conf = self.tmp / "bagscan.conf"
        self.mosquitto = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)])
        wait_port(self.device_port)
        wait_port(self.local_port)

    def stop_mosquitto(self) -> None:
        self.mosquitto.terminate()
        self.mosquitto.wait(10)
        self.mosquitto = None

    def write_mqtt_files(self) -> None:
        app = create_app({"DATABASE_URL": self.db_url, "SECRET_KEY": "x", "MQTT_URL": ""})
        result = app.test_cli_runner().invoke(
            args=[
                "mqtt-files",
                "--passwd", str(self.tmp / "passwd"),
                "--acl", str(self.tmp / "acl"),
                "--gateway-password", GATEWAY_PASSWORD,
            ]
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    def reload(self) -> None:
        """What docs/deploy.md says to do after provisioning: rewrite the files, SIGHUP."""
        if self.mosquitto is None:
            return
        self.write_mqtt_files()
        self.mosquitto.send_signal(signal.SIGHUP)
        time.sleep(0.3)

    def provision(self, device_id: str) -> str:
        status, body = self.gateway.api(
            "POST", "/api/devices", {"device_id": device_id, "replace": True}
        )
        assert status == 201, body
        self.reload()
        return body["mqtt"]["password"]

    def revoke(self, device_id: str) -> None:
        self.query("UPDATE devices SET password_hash = '' WHERE id = ?", device_id)
        self.reload()

    def query(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(self.db_url.removeprefix("sqlite:///"), timeout=30) as conn:
            return conn.execute(sql, args).fetchall()

    def seqs(self, device_id: str) -> list[int]:
        rows = self.query("SELECT seq FROM records WHERE device_id = ? ORDER BY seq", device_id)
        return [r[0] for r in rows]

    def health(self) -> int:
        return self.gateway.api("GET", "/api/health")[0]

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.health() != 200:
            assert time.monotonic() < deadline, "the gateway's ingest never got its session"
            time.sleep(0.2)

    def close(self) -> None:
        self.gateway.stop()
        if self.mosquitto is not None:
            self.stop_mosquitto()


class Client:
    """One MQTT connection (paho, MQTT 3.1.1) that records what it gets; no reconnects."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        clean_session: bool = True,
        will: tuple[str, bytes] | None = None,
        ca: Path | None = None,
    ):
        """ca: connect with TLS to localhost, trusting that CA certificate."""
        self.messages: list[tuple[str, bytes]] = []
        self.connack: int | None = None
        self.answered = threading.Event()
        self.dropped = threading.Event()
        self.granted: list[int] = []
        self._subacks = threading.Semaphore(0)
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            c.username_pw_set(username, password)
        if will is not None:  # retained, QoS 1
            c.will_set(will[0], will[1], qos=1, retain=True)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *_a: self.dropped.set()
        c.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        c.on_subscribe = self._on_subscribe
        self.client = c
        c.connect("127.0.0.1" if ca is None else "localhost", port, keepalive=30)
        if ca is None:
            # one network thread without paho's automatic reconnect
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        else:
            # paho's own thread: a publish from this thread then goes through it, where with
            # a loop of ours it wrote to the TLS socket beside the loop's reads and broke the
            # TLS stream ("unexpected eof"). It reconnects after a drop; these tests do not
            # drop TLS connections.
            self._thread = None
            c.loop_start()
        assert self.answered.wait(10), "no CONNACK"

    def _loop(self) -> None:
        while self.client.loop(0.05) == mqtt.MQTT_ERR_SUCCESS:
            pass
        self.dropped.set()

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:
        self.connack = 0 if not reason_code.is_failure else reason_code.value
        self.answered.set()

    def _on_subscribe(self, _c, _u, _mid, codes, _props) -> None:
        self.granted += [code.value for code in codes]
        self._subacks.release()

    @property
    def accepted(self) -> bool:
        return self.connack == 0 and not self.dropped.is_set()

    def subscribe(self, topic_filter: str) -> None:
        self.client.subscribe(topic_filter, 1)
        assert self._subacks.acquire(timeout=10), f"no SUBACK for {topic_filter}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def cut(self) -> None:
        """The link dies without a DISCONNECT (a device out of range): the will goes out."""
        self.client.socket().shutdown(2)
        if self._thread is not None:
            self._thread.join(5)

    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]

    def close(self) -> None:
        if not self.dropped.is_set():
            self.client.disconnect()
        if self._thread is None:
            self.client.loop_stop()
        else:
            self._thread.join(5)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
