"""Shared fixtures: the real MicroPython binary and a private Mosquitto per test session."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_path()


@pytest.fixture
def run_mpy(micropython, tmp_path):
    """Run a MicroPython snippet with firmware/ on sys.path; returns CompletedProcess.

    The snippet runs as a file so tracebacks carry line numbers.
    """

    def run(code: str, heap: str = DEFAULT_HEAP, timeout: float = 60, env=None, check=True):
        script = tmp_path / "snippet.py"
        script.write_text(code)
        full_env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen", **(env or {}))
        proc = subprocess.run(
            [micropython, "-X", f"heapsize={heap}", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=full_env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"micropython failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


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
            "max_inflight_messages 0\n"
            + (self.extra_config or "allow_anonymous true\n")
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
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


@pytest.fixture
def mosquitto():
    broker = Mosquitto().start()
    yield broker
    broker.stop()
    shutil.rmtree(broker.dir, ignore_errors=True)
