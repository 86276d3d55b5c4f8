"""Power cuts at random moments of a firmware update (issue 19; docs/benchmarks.md, "Firmware
updates over the air"): the sweep of which tests/firmware/test_handheld_ota.py cuts a sample at
fixed steps.

A private Mosquitto and a bagscan-gateway; for each of --cuts handhelds (code on its flash, a
release key made in a temp folder): a bag of two parcels closed and synced, a release rolled
out to it, a SIGKILL of its micropython process at a random moment --earliest to --window
seconds after the rollout (or, if it had reset itself into the trial by then, up to --boot
seconds into that boot, where main.py rewrites the ROMFS partition), the step its flash shows at
the cut, and a restart (and another whenever it resets itself, as the chip does with its power
on). Each must end on the new version, confirmed, with its two parcels stored once each.
Prints the cuts per step and the failures.

    .venv/bin/python bench/ota_powercut.py --cuts 30 --window 1.5
    .venv/bin/python bench/ota_powercut.py --cuts 40 --earliest 0.3 --window 1.3
"""

import argparse
import collections
import random
import tempfile
import time
from pathlib import Path

from devkit import release
from devkit.broker import Mosquitto
from devkit.gateway_process import Gateway
from devkit.handheld import SimHandheld
from devkit.updates import (
    parcels_stored,
    registered_handheld,
    roll_out,
    settled,
    update_of,
    upload,
)

VERSION = "0.2.1-sweep"
PARCELS = ["LZ910000001CN", "LZ910000002CN"]


def step_at_cut(sim: SimHandheld) -> str:
    """Where the update was when the power went, from what is on the flash."""
    ota = sim.code_root / "ota"
    rom = ota / "rom.slot"
    if rom.exists() and not rom.read_text():
        return "partition rewrite"
    if (ota / "active.slot").exists():
        return "confirmed"
    if (ota / "trial.slot").exists():
        boots = ota / "trial.boots"
        return "trial boot" if boots.exists() and boots.stat().st_size else "switch"
    if (ota / "release-a").exists():
        return "checked, in its slot"
    if (ota / "stage.bin").exists():
        return "fetch"
    return "before fetch"


def confirmed_while_powered(gateway: Gateway, sim: SimHandheld, device_id: str) -> None:
    """Wait for the update's confirmation, starting the handheld again whenever it resets
    itself (the switch after a cut before it), as the chip restarts with its power on."""
    done = settled("trial_confirmed", VERSION)
    deadline = time.monotonic() + 120
    while not done(update_of(gateway, device_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{device_id}: {update_of(gateway, device_id)}")
        if sim.proc is not None and sim.proc.poll() is not None:
            sim.start_through_resets()
        time.sleep(0.2)


def one_cut(
    tmp: Path, gateway: Gateway, key: Path, n: int, window: tuple[float, float], boot: float
) -> str:
    device_id = f"hh-sweep-{n:03d}"
    sim = registered_handheld(tmp / "flash", gateway, device_id, key)
    try:
        ctl = sim.start_through_resets()
        for trk in PARCELS:
            if ctl.scan(trk)["beep"] != "ok":
                raise AssertionError(f"{device_id}: {trk} refused")
        ctl.weigh(3_000)
        ctl.key("ok")
        ctl.expect(lambda o: o.get("screen", [""])[0] == "CLOSED")
        ctl.wait_synced()
        roll_out(gateway, VERSION, devices=[device_id])
        time.sleep(random.uniform(*window))
        if sim.proc is not None and sim.proc.poll() is None:
            sim.kill()
            step = step_at_cut(sim)
        else:  # it had reset itself into the trial: the cut falls in the boot into it
            sim.launch()
            time.sleep(random.uniform(0, boot))
            sim.kill()
            step = f"boot into the trial: {step_at_cut(sim)}"
        sim.start_through_resets()
        confirmed_while_powered(gateway, sim, device_id)
        ctl = sim.control or sim.start_through_resets()
        ctl.wait_synced()
        stored = parcels_stored(gateway, device_id)
        if stored != PARCELS:
            raise AssertionError(f"{device_id}: stored {stored}")
        return step
    finally:
        sim.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.5, help="seconds after the rollout")
    parser.add_argument("--earliest", type=float, default=0.0, help="no cut before (seconds)")
    parser.add_argument(
        "--boot",
        type=float,
        default=0.3,
        help="a handheld that reset itself before its cut is cut this long (random) into the "
        "next boot, where main.py writes the trial's image to the partition (seconds)",
    )
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key = tmp / "release.key"
        release.make_key(key)
        firmware = release.firmware_variant(tmp / "variant", VERSION)
        release.build(key, tmp / "sweep.release", "host", "sim", firmware)
        broker = Mosquitto().start()
        gateway = Gateway(
            tmp, mqtt_url=broker.url, extra_env={"BAGSCAN_DEVICE_MQTT_PORT": str(broker.port)}
        ).start()
        steps: collections.Counter[str] = collections.Counter()
        failures = []
        try:
            upload(gateway, tmp / "sweep.release")
            for n in range(args.cuts):
                try:
                    window = (args.earliest, args.window)
                    steps[one_cut(tmp, gateway, key, n, window, args.boot)] += 1
                except Exception as err:  # noqa: BLE001 - a failure is a result here
                    failures.append(f"cut {n}: {err!r}")
        finally:
            gateway.stop()
            broker.stop()
    print(f"{args.cuts} power cuts {args.earliest}-{args.window} s after the rollout, by step:")
    for step, count in steps.most_common():
        print(f"  {step}: {count}")
    print(f"{len(failures)} failed" + "".join(f"\n  {f}" for f in failures))


if __name__ == "__main__":
    main()
