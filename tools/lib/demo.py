"""tools/demo: the gateway (SQLite, embedded broker), K simulated handhelds and a workload."""

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from control import ControlError, Handheld

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = ROOT / "instance"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_port(wanted: int, what: str) -> int:
    if port_free(wanted):
        return wanted
    port = free_port()
    print(f"demo: port {wanted} for {what} is taken; using {port}")
    return port


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"demo: the gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("demo: the gateway did not start")


def workload(device_id: str, port: int, stop: threading.Event, tally: dict) -> None:
    """A warehouse worker: bag a few parcels, weigh the bag, close it; again."""
    rng = random.Random(device_id)
    try:
        hh = Handheld(port, timeout=60)
        while not stop.is_set():
            for _ in range(rng.randint(3, 8)):
                hh.scan(f"LZ{rng.randrange(10**11, 10**12)}CN")
            hh.weigh(rng.randint(2000, 15000))
            hh.key("ok")
            hh.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
            tally["bags"] = tally.get("bags", 0) + 1
            stop.wait(rng.uniform(1, 3))
    except (ControlError, OSError) as err:
        if not stop.is_set():
            print(f"demo: {device_id}: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__)
    parser.add_argument("--duration", type=float, help="stop by itself after SECONDS")
    parser.add_argument("--http-port", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=3)
    args = parser.parse_args()

    INSTANCE.mkdir(exist_ok=True)
    http_port = pick_port(args.http_port, "HTTP")
    env = dict(os.environ)
    env.setdefault("BAGSCAN_API_TOKEN", secrets.token_urlsafe(16))
    # The gateway creates the user admin with this password if it does not exist yet.
    env.setdefault("BAGSCAN_ADMIN_PASSWORD", secrets.token_urlsafe(9))
    if "BAGSCAN_DATABASE_URL" not in env:
        # A fresh database each run, so the handhelds' fresh flash matches it.
        db = INSTANCE / "demo.sqlite"
        for stale in INSTANCE.glob("demo.sqlite*"):
            stale.unlink()
        env["BAGSCAN_DATABASE_URL"] = f"sqlite:///{db}"
    if "BAGSCAN_MQTT_URL" not in env:
        env["BAGSCAN_MQTT_PORT"] = str(pick_port(int(env.get("BAGSCAN_MQTT_PORT", 1883)), "MQTT"))
    env["BAGSCAN_HTTP_PORT"] = str(http_port)
    token = env["BAGSCAN_API_TOKEN"]
    gateway_url = f"http://127.0.0.1:{http_port}"

    children: list[subprocess.Popen] = []
    stop = threading.Event()

    def shutdown(*_args) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        gateway = subprocess.Popen(["bagscan-gateway"], env=env, cwd=ROOT)
        children.append(gateway)
        wait_http(gateway_url + "/api/health", gateway)

        sim_root = INSTANCE / "demo-sim"
        subprocess.run(["rm", "-rf", str(sim_root)], check=True)
        workers = []
        tally: dict = {}
        for i in range(1, args.devices + 1):
            device_id, port = f"demo-{i}", free_port()
            sim = subprocess.Popen(
                [sys.executable, str(ROOT / "tools/lib/sim.py"), "--gateway", gateway_url,
                 "--token", token, "--device-id", device_id, "--control-port", str(port),
                 "--state-dir", str(sim_root / device_id)],
                env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            children.append(sim)
            worker = threading.Thread(
                target=workload, args=(device_id, port, stop, tally), daemon=True
            )
            worker.start()
            workers.append(worker)

        print(f"\nbagscan is running: admin page {gateway_url}/")
        print(f"login: admin / {env['BAGSCAN_ADMIN_PASSWORD']}")
        print(f"JSON API: {gateway_url}/api/bags  (Authorization: Bearer {token})")
        print("Ctrl-C stops everything.\n")
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            if gateway.poll() is not None:
                sys.exit(f"demo: the gateway exited with {gateway.returncode}")
            stop.wait(0.5)
        stop.set()
        print(f"demo: stopping; {tally.get('bags', 0)} bags closed on the handhelds")
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in reversed(children):
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


if __name__ == "__main__":
    main()
