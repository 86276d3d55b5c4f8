"""A client for a simulated handheld's control channel (docs/simulator.md)."""

import json
import socket
import time
from collections.abc import Callable


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
