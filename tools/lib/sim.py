"""One simulated handheld: provision it through the gateway's API, then run the real firmware
in the MicroPython unix port with the simulated board (docs/simulator.md)."""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import bundle
from provision import ProvisionError, register

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "sim"
# The free heap of an ESP32 without PSRAM (~110 KB, issue 3). The memory test proves the
# handheld's workload at 100K (tests/firmware/test_handheld_memory.py); at 100K a fleet of 20
# handhelds on a 2-core host (tests/tools/test_fleet.py) saw one config message fail with
# MemoryError halfway, so the simulator keeps the chip's own figure.
DEFAULT_HEAP = "110K"


def provision(gateway: str, token: str, device_id: str) -> dict:
    """POST /api/devices: the device's MQTT credentials and its bag-number range."""
    try:
        answer = register(gateway, token, device_id)
    except ProvisionError as err:
        sys.exit(f"sim: provisioning failed: {err}")
    return {
        "device_id": answer["device_id"],
        "mqtt": answer["mqtt"],
        "bag_range": answer["bag_range"],
    }


def micropython() -> str:
    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        sys.exit("sim: micropython is not installed in the venv (run tools/test or tools/demo)")
    return str(exe)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tools/sim", description=__doc__)
    parser.add_argument(
        "--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--token", required=True, help="the gateway's BAGSCAN_API_TOKEN")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument(
        "--state-dir", help="the handheld's flash (default: a folder per device id)"
    )
    parser.add_argument("--heap", default=DEFAULT_HEAP, help="MicroPython heap, e.g. 100K")
    args = parser.parse_args(argv)

    state = Path(args.state_dir or Path(tempfile.gettempdir()) / "bagscan-sim" / args.device_id)
    state.mkdir(parents=True, exist_ok=True)
    config = state / "config.json"
    # A restart after a power cut keeps its flash and its credentials.
    existing = json.loads(config.read_text()) if config.exists() else None
    if existing is None or existing.get("device_id") != args.device_id:
        settings = provision(args.gateway, args.token, args.device_id)
        tmp = config.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings))
        tmp.replace(config)

    firmware = bundle.build(BUILD)
    env = dict(
        os.environ,
        BAGSCAN_STATE_DIR=str(state),
        BAGSCAN_CONTROL_PORT=str(args.control_port),
        MICROPYPATH=f"{firmware}:.frozen",  # .frozen holds asyncio and friends
    )
    exe = micropython()
    # exec: this process becomes the handheld, so SIGKILL of it is a power cut.
    os.execve(exe, [exe, "-X", f"heapsize={args.heap}", str(firmware / "main.py")], env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fleet"]:  # tools/sim fleet ...: many handhelds, tools/lib/fleet.py
        import fleet

        sys.exit(fleet.main(sys.argv[2:]))
    main()
