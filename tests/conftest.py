"""Shared fixtures: the real MicroPython binary, a private Mosquitto, a database per test,
a gateway process and simulated handhelds (the machinery is in devkit/)."""

import os
import shutil
import subprocess

import pytest

from devkit import ROOT
from devkit.broker import Mosquitto
from devkit.database import scratch_database
from devkit.gateway_process import Gateway
from devkit.handheld import SimHandheld
from devkit.micropython import executable as micropython_executable

FIRMWARE = ROOT / "firmware"
# ESP32 without PSRAM leaves about 110 KB to MicroPython; snippets run under less.
SNIPPET_HEAP = "100K"


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_executable()


@pytest.fixture
def run_mpy(micropython, tmp_path):
    """Run a MicroPython snippet with firmware/ on sys.path; returns CompletedProcess.

    The snippet runs as a file so tracebacks carry line numbers.
    """

    def run(code: str, heap: str = SNIPPET_HEAP, timeout: float = 60, env=None, check=True):
        script = tmp_path / "snippet.py"
        script.write_text(code)
        full_env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:{ROOT}:.frozen", **(env or {}))
        proc = subprocess.run(
            [micropython, "-X", f"heapsize={heap}", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=full_env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"micropython failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def mosquitto():
    broker = Mosquitto().start()
    yield broker
    broker.stop()
    shutil.rmtree(broker.dir, ignore_errors=True)


@pytest.fixture
def broker_and_gateway(tmp_path):
    """A private Mosquitto, and a gateway that sends its devices to it."""
    broker = Mosquitto().start()
    gateway = Gateway(
        tmp_path,
        mqtt_url=broker.url,
        extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(broker.port)},
    ).start()
    yield broker, gateway
    gateway.stop()
    broker.stop()


@pytest.fixture
def database_url(tmp_path):
    with scratch_database(tmp_path) as url:
        yield url


@pytest.fixture
def gateway(tmp_path, database_url):
    gw = Gateway(tmp_path, db_url=database_url).start()
    yield gw
    gw.stop()


@pytest.fixture
def handhelds(tmp_path):
    started: list[SimHandheld] = []

    def start(gateway: Gateway, device_id: str, heap: str | None = None):
        flash = tmp_path / "flash" / device_id
        sim = SimHandheld.provisioned(gateway.url, gateway.token, device_id, flash, heap)
        started.append(sim)
        sim.start()
        return sim

    yield start
    for sim in started:
        sim.kill()
