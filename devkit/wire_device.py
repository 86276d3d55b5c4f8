"""A CPython stand-in for a handheld's journal drain, speaking the wire format (docs/protocol.md).

For volume tests and the throughput bench: records live in RAM in sequence order, go out in
batches on the events topic, and leave only on the gateway's acknowledgement; no progress for
`ack_timeout` seconds means "send again from the oldest unacknowledged record", as
firmware/app/sync.py does. Also a raw MQTT 3.1.1 publisher for DUP and malformed packets.
"""

import json
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt

from protocol import wire, wire_schema


def record(seq: int, kind: str = "parcel", boot: int = 1, space: int = 0, **fields) -> dict:
    """A valid record; parcel records get a bag and a tracking number from seq. A device of
    its own `space` (1, 2, ...) fills bags of its own with parcels of its own, as handhelds
    do (bag numbers come from each device's range); space 0 is shared by every device."""
    if kind == "parcel" and not fields:
        trk = f"LZ{seq:09d}CN" if not space else f"LZ{space:03d}{seq:09d}CN"
        fields = {"bag": wire.bag_number(space * 100_000 + 1 + (seq - 1) // 300), "trk": trk}
    now = int(time.time())
    return {
        "s": seq,
        "b": boot,
        "t": (seq * 7) % wire_schema.TICKS_PERIOD,
        "w": now,
        "q": 1,
        "k": kind,
        **fields,
    }


class WireDevice:
    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        password: str | None = None,
        batch: int = 50,
        ahead: int = 3000,
        ack_timeout: float = 5.0,
        client_id: str | None = None,
        space: int = 0,
    ):
        self.device_id = device_id
        self.space = space  # record(): the bags and parcels of add_parcels
        self.batch = batch
        self.ahead = ahead
        self.ack_timeout = ack_timeout
        self.records: list[bytes] = []
        self.sent = 0
        self.acked = 0
        self.resends = 0
        self.publish_times: dict[int, float] = {}  # last seq of a message -> time published
        self.ack_times: list[tuple[float, int]] = []
        self._progress_at = time.monotonic()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"bagscan-{device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.max_inflight_messages_set(20)
        self.client.max_queued_messages_set(0)
        if password is not None:
            self.client.username_pw_set(device_id, password)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self._connected.clear()
        self.client.on_message = self._on_message
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, recs: list[dict]) -> None:
        with self._lock:
            for rec in recs:
                self.records.append(json.dumps(rec, separators=(",", ":")).encode())
        self._wake.set()

    def add_parcels(self, n: int) -> None:
        first = len(self.records) + 1
        self.add([record(s, space=self.space) for s in range(first, first + n)])

    def start(self) -> "WireDevice":
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.acked >= len(self.records):
                return True
            time.sleep(0.05)
        return False

    def _on_connect(self, client, _u, _f, reason_code, _p) -> None:
        if reason_code.is_failure:
            return
        client.subscribe(wire.topic(self.device_id, wire.ACK), 1)
        self._connected.set()
        self._wake.set()

    def _on_message(self, _c, _u, msg) -> None:
        body = json.loads(msg.payload)
        if wire.ack_error(body) is None and body["s"] > self.acked:
            self.acked = min(body["s"], len(self.records))
            self.ack_times.append((time.monotonic(), self.acked))
            self._progress_at = time.monotonic()
            self._wake.set()

    def _run(self) -> None:
        topic = wire.topic(self.device_id, wire.EVENTS)
        while not self._stop.is_set():
            now = time.monotonic()
            if self.sent > self.acked and now - self._progress_at > self.ack_timeout:
                self.sent = self.acked  # no acknowledgement in time: send again from the gap
                self._progress_at = now
                self.resends += 1
            with self._lock:
                ready = self.sent < len(self.records) and self.sent - self.acked < self.ahead
                if ready and self._connected.is_set():
                    if self.sent < self.acked:
                        self.sent = self.acked
                    if self.sent == self.acked:
                        self._progress_at = now
                    chunk = self.records[self.sent : self.sent + self.batch]
                else:
                    chunk = []
            if chunk:
                self.client.publish(topic, wire_schema.events_payload(chunk), qos=1)
                self.sent += len(chunk)
                self.publish_times[self.sent] = time.monotonic()
                continue
            self._wake.wait(0.1)
            self._wake.clear()


class RawMQTT:
    """A bare MQTT 3.1.1 connection: exact packets, for DUP resends and protocol abuse."""

    # Every connection made, so a test can close them all at its end (close_all), also the
    # ones a refused login left behind mid-constructor.
    opened: list["RawMQTT"] = []

    def __init__(self, host: str, port: int, client_id: str, user=None, password=None):
        self.sock = socket.create_connection((host, port), timeout=10)
        RawMQTT.opened.append(self)
        flags = 0x02  # clean session
        payload = _mqtt_str(client_id.encode())
        if user is not None:
            flags |= 0x80
            payload += _mqtt_str(user.encode())
        if password is not None:
            flags |= 0x40
            payload += _mqtt_str(password.encode())
        body = _mqtt_str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + payload
        self.sock.sendall(bytes([0x10]) + _varint(len(body)) + body)
        kind, data = self.read()
        self.connack = data[1] if kind == 0x20 and len(data) == 2 else -1

    def publish(self, topic: bytes | str, payload: bytes, pid: int = 0, dup: bool = False):
        t = topic.encode() if isinstance(topic, str) else topic
        first = 0x30 | (0x02 if pid else 0) | (0x08 if dup else 0)
        body = _mqtt_str(t) + (struct.pack("!H", pid) if pid else b"") + payload
        self.sock.sendall(bytes([first]) + _varint(len(body)) + body)

    def read(self) -> tuple[int, bytes]:
        head = self._exact(1)[0]
        n, shift = 0, 0
        while True:
            b = self._exact(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head & 0xF0, self._exact(n)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by broker")
            buf += chunk
        return buf

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()

    @classmethod
    def close_all(cls) -> None:
        for raw in cls.opened:
            raw.close()
        cls.opened.clear()


def _mqtt_str(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
