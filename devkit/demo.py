"""tools/demo: the gateway (SQLite, embedded broker) and K simulated handhelds running a short
day from tools/scenarios/demo.json through the fleet (devkit.fleet): bagging, weighing,
a courier pickup with a signed handover and a refused bag, a hub arrival."""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from devkit import ROOT, provision
from devkit.control import ControlError
from devkit.fleet.check import differences
from devkit.fleet.display import Display
from devkit.fleet.fleet import Fleet
from devkit.fleet.scenario import SCENARIOS, ScenarioError, load, plan
from devkit.ports import free_port, port_free

INSTANCE = ROOT / "instance"
DEMO_SCENARIO = SCENARIOS / "demo.json"
GATEWAY_LOG = INSTANCE / "demo-gateway.log"


def pick_port(wanted: int, what: str) -> int:
    if port_free(wanted):
        return wanted
    port = free_port()
    print(f"demo: port {wanted} for {what} is taken; using {port}")
    return port


def gateway_died(code: int) -> str:
    tail = GATEWAY_LOG.read_text(errors="replace").splitlines()[-15:]
    return "\n".join(tail + [f"demo: the gateway exited with {code} (log: {GATEWAY_LOG})"])


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(gateway_died(proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("demo: the gateway did not start")


def scenario_for(devices: int) -> dict:
    """tools/scenarios/demo.json fitted to `devices` handhelds: a hub handheld from 2 on (one
    handheld only bags and hands over: no hub arrival), as many sellers as there is room for,
    the rest shared among them (devkit.fleet.scenario.plan)."""
    if devices < 1:
        raise ScenarioError("--devices must be at least 1")
    day = load(DEMO_SCENARIO)
    day.pop("expect", None)  # recomputed for this size
    if devices == 1:
        day["hubs"] = []
        day["day"] = [s for s in day["day"] if s["do"] != "arrive"]
    day["sellers"] = day["sellers"][: max(1, devices - len(day["hubs"]))]
    return day


def run_day(day: Fleet, stop: threading.Event) -> None:
    """Start the handhelds and run the day; on success check the gateway against the plan."""
    try:
        day.start()
        day.run_day()
        problems = differences(day)
    except (ControlError, OSError, provision.ProvisionError) as err:
        if not stop.is_set():
            print(f"demo: the scenario stopped: {err} (logs in {day.state_root.parent})")
        return
    t = day.tally()
    print(
        f"demo: the day is done: {t['bags']} bags, {t['parcels']} parcels, "
        f"{t['refused_scans']} scans refused, {len(day.handovers)} signed handover(s)"
    )
    for problem in problems:
        print(f"demo: MISMATCH {problem}")
    if not problems:
        print("demo: the gateway agrees with the scenario")
    print("demo: the handhelds stay on; Ctrl-C stops everything.", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__)
    parser.add_argument("--duration", type=float, help="stop by itself after SECONDS")
    parser.add_argument("--http-port", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=3)
    args = parser.parse_args()
    try:
        scenario = scenario_for(args.devices)
        plan(scenario, args.devices)
    except ScenarioError as err:
        parser.error(str(err))

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
    day: Fleet | None = None
    display: Display | None = None

    def shutdown(*_args) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        # Its request log would bury the progress lines: it goes to a file.
        with GATEWAY_LOG.open("wb") as log:
            gateway = subprocess.Popen(
                ["bagscan-gateway"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        children.append(gateway)
        wait_http(gateway_url + "/api/health", gateway)

        print(f"\nbagscan is running: admin page {gateway_url}/")
        print(f"login: admin / {env['BAGSCAN_ADMIN_PASSWORD']}")
        print(f"JSON API: {gateway_url}/api/bags  (Authorization: Bearer {token})")
        print(f"gateway log: {GATEWAY_LOG.relative_to(ROOT)}")
        print("Ctrl-C stops everything.\n", flush=True)

        sim_root = INSTANCE / "demo-sim"
        subprocess.run(["rm", "-rf", str(sim_root)], check=True)
        day = Fleet(gateway_url, token, scenario, sim_root / "flash", args.devices)
        display = Display(day, sys.stdout, live=False)
        display.start()
        runner = threading.Thread(target=run_day, args=(day, stop), name="day", daemon=True)
        runner.start()
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            if gateway.poll() is not None:
                sys.exit(gateway_died(gateway.returncode))
            stop.wait(0.5)
        stop.set()
        print(f"demo: stopping; {day.tally()['bags']} bags closed on the handhelds", flush=True)
    finally:
        if day is not None:
            display.stop()
            day.stop()  # the handhelds; no new one starts after this
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
