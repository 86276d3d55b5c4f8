"""tools/demo runs the product from this checkout and stops by itself, leaving nothing behind."""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from devkit import ROOT, gateway_api
from devkit.demo import GATEWAY_LOG, scenario_for
from devkit.fleet.scenario import plan
from devkit.ports import free_port


def api(port: int, token: str, path: str) -> dict | None:
    """The JSON answer, or None for a 404 (the gateway is still starting: OSError)."""
    status, body = gateway_api.call(f"http://127.0.0.1:{port}", token, "GET", path, timeout=5)
    if status == 404:
        return None
    assert status == 200, body
    return body


def api_bags(port: int, token: str) -> list[dict]:
    return api(port, token, "/api/bags?per_page=200")["bags"]


@pytest.mark.parametrize("devices", [1, 2, 3, 7])
def test_the_demo_day_fits_any_number_of_handhelds(devices):
    day = plan(scenario_for(devices), devices)
    assert len(day.devices) == devices
    assert day.handovers >= 1 and day.statuses["pickup_failed"] == 1
    assert day.statuses["awaiting_pickup"] >= 1  # the afternoon round waits for a driver
    if devices == 1:  # no hub handheld: bagging and the pickup only
        assert "received" not in day.statuses
    else:
        assert day.statuses["received"] and day.statuses["received_exception"] == 1


def test_demo_makes_bags_and_exits_cleanly():
    port, token = free_port(), "demo-test-" + os.urandom(4).hex()
    env = dict(os.environ, BAGSCAN_API_TOKEN=token)
    demo = subprocess.Popen(
        [str(ROOT / "tools" / "demo"), "--duration", "30", "--http-port", str(port), "--devices", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(demo.stdout), daemon=True)
    reader.start()

    closed: list[dict] = []
    handover = None
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and handover is None and demo.poll() is None:
        time.sleep(1)
        try:
            closed = [b for b in api_bags(port, token) if b["closed_at"]]
            handover = api(port, token, "/api/handovers/1")
        except OSError:
            continue
    assert closed, "no closed bag reached /api/bags:\n" + "".join(output)
    # --devices 2: one seller handheld and the hub's (tools/scenarios/demo.json)
    assert {b["device_id"] for b in closed} <= {"demo-sz-gadgets-1", "demo-hub"}
    assert handover is not None, "no signed handover reached /api/handovers:\n" + "".join(output)
    assert handover["device_id"] == "demo-sz-gadgets-1"

    assert demo.wait(60) == 0, "".join(output)
    reader.join(5)
    demo.stdout.close()
    text = "".join(output)
    # pytest shortens a long assertion message; what is printed shows in full on a failure.
    print(text, "---- " + str(GATEWAY_LOG), GATEWAY_LOG.read_text(errors="replace"), sep="\n")
    assert f"http://127.0.0.1:{port}/" in text
    assert re.search(r"login: admin / \S+", text)
    assert "the gateway agrees with the scenario" in text
    leftovers = subprocess.run(
        ["pgrep", "-f", str(ROOT / "instance" / "demo-sim")], capture_output=True, text=True
    )
    assert leftovers.stdout == "", "handhelds left running"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the gateway still listens"
