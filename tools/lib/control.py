"""A client for a simulated handheld's control channel (docs/simulator.md)."""

import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path


class ControlError(AssertionError):
    pass


class Handheld:
    def __init__(self, port: int, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._buf = b""
        self.events: list[dict] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def _read_line(self, deadline: float) -> dict | None:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ControlError("handheld closed the control channel")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        obj = json.loads(line)
        self.events.append(obj)
        return obj

    def expect(self, pred: Callable[[dict], bool], timeout: float | None = None) -> dict:
        """The next object matching pred; earlier ones are kept in events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            obj = self._read_line(deadline)
            if obj is None:
                raise ControlError(f"no matching event in time; last: {self.events[-3:]}")
            if pred(obj):
                return obj

    def state(self) -> dict:
        self.send("state")
        return self.expect(lambda o: "journal_depth" in o)

    def scan(self, code: str) -> dict:
        """Scan and return the resulting beep event (ok, or error with its code)."""
        self.send(f"scan {code}")
        return self.expect(lambda o: "beep" in o)

    def weigh(self, grams: int, timeout: float = 20.0) -> dict:
        """Put grams on the scale and wait until the handheld has taken a stable weight."""
        self.send(f"weight {grams}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st.get("weight_g") is not None and abs(st["weight_g"] - grams) <= 2:
                return st
            time.sleep(0.05)
        raise ControlError(f"scale never settled on {grams} g")

    def key(self, name: str) -> None:
        self.send(f"key {name}")

    def wait_synced(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st["journal_depth"] == 0 and st.get("connected"):
                return st
            time.sleep(0.1)
        raise ControlError(f"journal not drained: {st}")


# --- a handheld without a gateway: the firmware with a hand-written config.json -------------

JOURNAL_MAGIC = 0x4A42  # docs/journal.md, "Frame"
JOURNAL_HEADER = struct.Struct("<HHII")


def read_journal(directory: Path) -> list[dict]:
    """The records of a handheld's journal (docs/journal.md), decoded in CPython.

    Valid frames only, segment by segment, stopping at the first bad frame of a segment as
    the firmware's recovery does; each record's "s" is its seq.
    """
    records = []
    for seg in sorted(Path(directory).glob("*.jnl")):
        data = seg.read_bytes()
        pos = 0
        while pos + JOURNAL_HEADER.size <= len(data):
            magic, n, seq, crc = JOURNAL_HEADER.unpack_from(data, pos)
            end = pos + JOURNAL_HEADER.size + n
            if magic != JOURNAL_MAGIC or end > len(data):
                break
            payload = data[pos + JOURNAL_HEADER.size : end]
            if zlib.crc32(payload, zlib.crc32(data[pos : pos + 8])) != crc:
                break
            rec = json.loads(payload)
            if rec.get("s") != seq:
                break
            records.append(rec)
            pos = end
    return records


class LocalHandheld:
    """tools/sim's firmware run directly: state_dir/config.json written from `config`
    (device_id, mqtt, bag_range and any config-message keys), no provisioning, no broker
    needed (the MQTT client keeps retrying). start() again after kill() is a reboot."""

    def __init__(self, state_dir: Path, config: dict, heap: str = "100K", env: dict | None = None):
        import bundle  # tools/lib

        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "config.json").write_text(json.dumps(config))
        self.heap = heap
        self.env = env or {}
        self.firmware = bundle.build(bundle.ROOT / "build" / "sim")
        self.proc: subprocess.Popen | None = None
        self.control: Handheld | None = None
        self.log = self.state_dir.parent / (self.state_dir.name + ".log")

    def start(self) -> "Handheld":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(
            os.environ,
            BAGSCAN_STATE_DIR=str(self.state_dir),
            BAGSCAN_CONTROL_PORT=str(port),
            MICROPYPATH=f"{self.firmware}:.frozen",
            **self.env,
        )
        exe = str(Path(sys.executable).with_name("micropython"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-X", f"heapsize={self.heap}", str(self.firmware / "main.py")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.control = Handheld(port)
        self.control.state()  # the firmware has booted and recovered
        return self.control

    def kill(self) -> None:
        """A power cut: SIGKILL, nothing flushed that was not flushed already."""
        if self.control:
            self.control.close()
            self.control = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def journal(self) -> list[dict]:
        return read_journal(self.state_dir / "journal")
