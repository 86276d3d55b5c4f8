"""tools/demo runs the product from this checkout and stops by itself, leaving nothing behind."""

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

from harness import ROOT, free_port


def api_bags(port: int, token: str) -> list[dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/bags?per_page=200",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)["bags"]


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
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not closed and demo.poll() is None:
        time.sleep(1)
        try:
            closed = [b for b in api_bags(port, token) if b["closed_at"]]
        except OSError:
            continue
    assert closed, "no closed bag reached /api/bags:\n" + "".join(output)
    assert {b["device_id"] for b in closed} <= {"demo-1", "demo-2"}

    assert demo.wait(60) == 0, "".join(output)
    reader.join(5)
    demo.stdout.close()
    text = "".join(output)
    assert f"http://127.0.0.1:{port}/" in text
    assert re.search(r"login: admin / \S+", text)
    leftovers = subprocess.run(
        ["pgrep", "-f", str(ROOT / "instance" / "demo-sim")], capture_output=True, text=True
    )
    assert leftovers.stdout == "", "handhelds left running"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the gateway still listens"
