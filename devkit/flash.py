"""tools/flash: put bagscan on an ESP32 that runs stock MicroPython, and prove it arrived.

Builds the firmware for the ESP32 (.mpy for xtensawin), stages it with /pinmap.json and the
device's /data/config.json (written by tools/provision), copies it with mpremote, then hashes
every file on the device and compares. --dry-run stops after the staging and prints the plan.
--frozen is for a board whose MicroPython image has the firmware frozen in
(firmware/manifest.py): only main.py, the pin map and the config are copied, and code left on
the filesystem is removed, since it would be imported before the frozen modules.
--romfs is for a board whose MicroPython has a ROMFS partition (MICROPY_VFS_ROM): the code
goes there as one image (mpremote romfs deploy) and runs from flash in place, as the
simulator runs it (devkit/romfs.py); the filesystem gets what --frozen gives it.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devkit import ROOT, bundle, release, romfs

BUILD = ROOT / "build" / "esp32"
PINMAP = ROOT / "hw" / "pinmap.json"
# Removed when not in the new bundle; "ota" holds an update's slots and state (docs/ota.md),
# which would otherwise boot instead of what was flashed.
CODE_DIRS = ("app", "drivers", "hal", "net", "protocol", "lang", "ota")
DATA = "/data"
# Kept on every flash: the scale's calibration belongs to this platform and load cell.
KEEP_DATA = ("scale.json",)

# Runs on the device (mpremote run): the device id it holds and the sha256 of every file
# outside /data, plus the /data files named in WANT. Prints one JSON line.
_INSPECT = """
import os, json, hashlib, binascii
WANT = %r
def sha(p):
    h = hashlib.sha256()
    b = bytearray(512)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
def walk(d, out):
    for e in os.ilistdir(d):
        p = (d if d != "/" else "") + "/" + e[0]
        if e[1] & 0x4000:
            if p != "/data":
                walk(p, out)
        else:
            out[p] = sha(p)
files = {}
walk("/", files)
data = []
try:
    data = [e[0] for e in os.ilistdir("/data")]
except OSError:
    pass
for p in WANT:
    if p[6:] in data:
        files[p] = sha(p)
dev = None
try:
    with open("/data/config.json") as f:
        dev = json.load(f).get("device_id")
except (OSError, ValueError):
    pass
print("BAGSCAN-INSPECT " + json.dumps({"device_id": dev, "files": files, "data": data}))
"""


class FlashError(Exception):
    pass


def mpremote() -> str:
    override = os.environ.get("BAGSCAN_MPREMOTE")  # tests point it at a fake board
    if override:
        return override
    exe = Path(sys.executable).with_name("mpremote")
    return str(exe) if exe.exists() else "mpremote"


def device_config(host_config: dict, config_dir: Path) -> tuple[dict, Path | None]:
    """The /data/config.json the firmware reads at boot (app.boot: start, _client_config),
    and the CA file to copy: tools/provision writes mqtt.ca as a path on this computer."""
    try:
        cfg = {
            "device_id": str(host_config["device_id"]),
            "mqtt": dict(host_config["mqtt"]),
            "bag_range": [int(n) for n in host_config["bag_range"]],
            "wifi": [
                {"ssid": str(n["ssid"]), "password": str(n.get("password", ""))}
                for n in host_config.get("wifi", [])
            ],
        }
        mqtt = cfg["mqtt"]
        for key in ("host", "port", "user", "password"):
            if not mqtt.get(key):
                raise FlashError(f"config: mqtt.{key} is missing")
        mqtt["port"] = int(mqtt["port"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise FlashError(f"config: not a tools/provision config ({err!r})") from None
    if len(cfg["bag_range"]) != 2 or cfg["bag_range"][0] > cfg["bag_range"][1]:
        raise FlashError("config: bag_range must be [lo, hi]")
    if not cfg["wifi"]:
        print("flash: warning: no Wi-Fi network in the config (tools/provision --wifi SSID:PASS)")
    ca = None
    if mqtt.get("ca"):
        ca = (config_dir / mqtt["ca"]).resolve()
        if not ca.is_file():
            raise FlashError(f"config: the CA file {ca} does not exist")
        mqtt["ca"] = f"{DATA}/ca{'.der' if ca.suffix == '.der' else '.pem'}"
        mqtt["tls"] = True
    else:
        mqtt["ca"] = None
    mqtt["tls"] = bool(mqtt.get("tls"))
    return cfg, ca


def stage(
    config_path: Path, into: Path, frozen: bool = False, release_public: Path | None = None
) -> tuple[dict, list[tuple[Path, str]]]:
    """Build the bundle and lay out the device's filesystem in `into`; returns the device
    config and [(local file, device path)]. frozen: the code is in the image or in the ROMFS
    partition (image_path), stage main.py only. release_public: the release key's public
    file (tools/release key), which the handheld checks updates with (docs/ota.md); without
    it the handheld refuses them."""
    try:
        host_config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise FlashError(f"config: cannot read {config_path}: {err}") from None
    cfg, ca = device_config(host_config, config_path.parent)
    firmware = bundle.build(BUILD, target="esp32", board="esp32")
    if into.exists():
        shutil.rmtree(into)
    if frozen:
        into.mkdir(parents=True)
        shutil.copyfile(firmware / "main.py", into / "main.py")
    else:
        shutil.copytree(firmware, into, ignore=shutil.ignore_patterns(".*"))
    shutil.copyfile(PINMAP, into / "pinmap.json")
    if release_public is not None:
        shutil.copyfile(release_public, into / release.PUBLIC_FILE)
    (into / "data").mkdir()
    (into / "data" / "config.json").write_text(json.dumps(cfg, separators=(",", ":")))
    if ca is not None:
        shutil.copyfile(ca, into / cfg["mqtt"]["ca"].lstrip("/"))
    files = sorted(p for p in into.rglob("*") if p.is_file())
    return cfg, [(p, "/" + p.relative_to(into).as_posix()) for p in files]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def budget_report(staged: Path) -> tuple[str, list[str]]:
    size = bundle.footprint(staged)
    over = []
    if size["flash_bytes"] > bundle.FLASH_BUDGET:
        over.append(f"flash: {size['flash_bytes']} B of VFS > budget {bundle.FLASH_BUDGET} B")
    if size["resident_mpy_bytes"] > bundle.RAM_BUDGET:
        over.append(
            f"RAM: {size['resident_mpy_bytes']} B of .mpy resident > budget {bundle.RAM_BUDGET} B"
        )
    line = (
        f"{size['files']} files, {size['bytes']} B; on the VFS {size['flash_bytes']} B of "
        f"{bundle.FLASH_BUDGET} B budget ({bundle.VFS_BYTES} B partition); "
        f".mpy {size['mpy_bytes']} B, at most {size['resident_mpy_bytes']} B of it resident, "
        f"of {bundle.RAM_BUDGET} B heap budget"
    )
    return line, over


class Board:
    """mpremote against one serial port."""

    def __init__(self, port: str):
        self.port = port

    def run(self, *commands: list[str], capture: bool = False) -> str:
        argv = [mpremote(), "connect", self.port]
        for i, cmd in enumerate(commands):
            argv += (["+"] if i else []) + cmd
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlashError(
                f"mpremote failed ({proc.returncode}): {' '.join(argv[:6])} ...\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def inspect(self, want: list[str]) -> dict:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(_INSPECT % (want,))
        try:
            out = self.run(["run", f.name])
        finally:
            os.unlink(f.name)
        for line in out.splitlines():
            if line.startswith("BAGSCAN-INSPECT "):
                return json.loads(line.split(" ", 1)[1])
        raise FlashError(f"the device did not answer the inspection:\n{out[-2000:]}")


def stale_files(on_device: dict[str, str], planned: set[str]) -> list[str]:
    """Code left from an earlier flash: a stale app/x.py would be imported before app/x.mpy."""
    stale = []
    for path in on_device:
        parts = path.strip("/").split("/")
        in_code_dir = len(parts) > 1 and parts[0] in CODE_DIRS
        at_root = len(parts) == 1 and path.endswith((".py", ".mpy")) and path != "/boot.py"
        if (in_code_dir or at_root) and path not in planned:
            stale.append(path)
    return sorted(stale)


def image_path(staged: Path, release_public: Path | None) -> Path:
    """The ROMFS image of the ESP32 bundle, with the release key's public file (app/boot.py
    reads it from its code's root, /rom), built beside the staging folder."""
    key = {release.PUBLIC_FILE: release_public.read_bytes()} if release_public else None
    return romfs.build(BUILD, staged.with_name(staged.name + ".romfs"), key)


def flash(
    port: str,
    cfg: dict,
    plan: list[tuple[Path, str]],
    wipe: bool,
    reset: bool,
    image: Path | None = None,
) -> None:
    board = Board(port)
    data_paths = [dest for _, dest in plan if dest.startswith(DATA + "/")]
    print(f"flash: inspecting the board on {port}")
    before = board.inspect(data_paths)
    if before["device_id"] not in (None, cfg["device_id"]) and not wipe:
        raise FlashError(
            f"the board holds device {before['device_id']!r}, the config is for "
            f"{cfg['device_id']!r}: its journal and bag numbers belong to the old id. "
            "Sync it first, then flash again with --wipe (keeps the scale calibration)."
        )
    commands = []
    if image is not None:
        print(f"flash: writing the code's ROMFS image ({image.stat().st_size} B)")
        commands.append(["romfs", "deploy", str(image)])
    if wipe:
        for name in before["data"]:
            if name not in KEEP_DATA:
                commands.append(["fs", "rm", "-r", f":{DATA}/{name}"])
    dirs = sorted({dest.rsplit("/", 1)[0] for _, dest in plan} - {""})
    mkdirs = f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
    commands.append(["exec", mkdirs])
    # mpremote's cp skips a file whose hash on the device already matches.
    commands += [["fs", "cp", str(src), ":" + dest] for src, dest in plan]
    commands += [["fs", "rm", ":" + p] for p in stale_files(before["files"], {d for _, d in plan})]
    print(f"flash: copying {len(plan)} files")
    board.run(*commands)
    after = board.inspect(data_paths)
    bad = [dest for src, dest in plan if after["files"].get(dest) != sha256(src)]
    if bad:
        raise FlashError("hash mismatch on the device after copying: " + ", ".join(bad))
    leftover = stale_files(after["files"], {d for _, d in plan})
    if leftover:
        raise FlashError("stale code still on the device: " + ", ".join(leftover))
    print(f"flash: verified {len(plan)} files by sha256 on the device")
    if reset:
        board.run(["reset"])
        print("flash: reset; the handheld boots bagscan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/flash", description=__doc__)
    parser.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0")
    parser.add_argument("--config", required=True, type=Path, help="from tools/provision")
    parser.add_argument("--dry-run", action="store_true", help="build and print the plan only")
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="clear /data (journal, bag counter) except the scale calibration",
    )
    parser.add_argument("--no-reset", action="store_true", help="do not reset the board after")
    parser.add_argument("--stage", type=Path, help="staging folder (default build/flash/<id>)")
    parser.add_argument(
        "--frozen",
        action="store_true",
        help="the board's image has the firmware frozen in (firmware/manifest.py): "
        "copy main.py, pin map and config only",
    )
    parser.add_argument(
        "--romfs",
        action="store_true",
        help="the board's MicroPython has a ROMFS partition: write the code there as one image "
        "(runs from flash, not the heap) and copy main.py, pin map and config",
    )
    parser.add_argument(
        "--release-key",
        type=Path,
        help="KEY.pub of tools/release key: the handheld accepts updates signed with KEY",
    )
    args = parser.parse_args(argv)
    if not args.dry_run and not args.port:
        parser.error("--port is required unless --dry-run")
    try:
        host_id = json.loads(args.config.read_text()).get("device_id", "device")
    except (OSError, ValueError, AttributeError):
        host_id = "device"
    staged = args.stage or ROOT / "build" / "flash" / str(host_id)
    try:
        key_on_filesystem = None if args.romfs else args.release_key
        cfg, plan = stage(args.config, staged, args.frozen or args.romfs, key_on_filesystem)
        image = image_path(staged, args.release_key) if args.romfs else None
        line, over = budget_report(staged)
        if args.dry_run or over:
            for src, dest in plan:
                print(f"copy {src.relative_to(staged)} -> :{dest}  {src.stat().st_size} B")
        print(f"flash: device {cfg['device_id']}: {line}")
        if over:
            raise FlashError("the bundle is over budget: " + "; ".join(over))
        if args.dry_run:
            print("flash: dry run, nothing copied")
            return 0
        flash(args.port, cfg, plan, args.wipe, not args.no_reset, image)
    except FlashError as err:
        print(f"flash: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
