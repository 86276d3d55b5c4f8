"""One simulated handheld: the firmware bundle run by the MicroPython unix port with the
simulated board, its flash a folder on the host (docs/simulator.md). Tests, benches, the fleet
and tools/sim all start a handheld through this module."""

import json
import os
import struct
import subprocess
import time
import zlib
from pathlib import Path

from devkit import ROOT, bundle, micropython, release, romfs
from devkit.control import Handheld
from devkit.ports import free_port
from devkit.provision import register

BUILD = ROOT / "build" / "sim"
IMAGE = ROOT / "build" / "sim.romfs"
BOOT = Path(__file__).with_name("romfs_boot.py")
# The simulator's heap: an ESP32 without PSRAM has ~110 KB free once Wi-Fi runs (issue 3).
# The handheld's code runs from a ROMFS image outside it, as on a board built with ROMFS
# (devkit/romfs.py, docs/firmware.md "Code outside the heap"); the memory test proves the
# workload in a smaller heap (tests/firmware/test_handheld_memory.py, docs/benchmarks.md).
DEFAULT_HEAP = "110K"


def firmware_command(
    state_dir: Path,
    control_port: int,
    heap: str = DEFAULT_HEAP,
    env: dict | None = None,
    code_root: Path | None = None,
) -> tuple[list[str], dict]:
    """(argv, environment) of the handheld process: the bundle built (only what changed) and
    run from its ROMFS image, its flash in state_dir, its control channel on control_port.
    code_root: run the code installed there instead (devkit/release.py install), as an ESP32
    runs what tools/flash --romfs put on it and an update unpacked beside (docs/ota.md)."""
    exe = micropython.executable()
    full_env = dict(
        os.environ,
        BAGSCAN_STATE_DIR=str(state_dir),
        BAGSCAN_CONTROL_PORT=str(control_port),
        MICROPYPATH=".frozen",  # asyncio and friends, frozen into the unix port
        **(env or {}),
    )
    if code_root is None:
        main = BUILD / "main.py"
        image = romfs.build(bundle.build(BUILD), IMAGE)
    else:
        main, image = code_root / "main.py", code_root / romfs.PARTITION
    full_env["BAGSCAN_ROMFS"] = str(image)
    return boot_command(exe, romfs.heapsize(heap, image), main), full_env


def boot_command(exe: str, heapsize: int, main: Path) -> list[str]:
    """The unix port running main.py as a board with a ROMFS partition starts it
    (devkit/romfs_boot.py). The start-up runs as -c: a board has no such file, and a script's
    path and folder would be interned names the board does not spend (docs/firmware.md, "Few
    interned names")."""
    return [exe, "-X", f"heapsize={heapsize}", "-c", BOOT.read_text(), str(main)]


def provision_flash(state_dir: Path, gateway: str, token: str, device_id: str) -> None:
    """Register device_id with the gateway (POST /api/devices) and write its credentials and
    bag-number range to state_dir/config.json, unless the flash holds this device's config
    already: a restart after a power cut keeps its flash and its credentials.
    Raises devkit.provision.ProvisionError."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "config.json"
    existing = json.loads(config.read_text()) if config.exists() else None
    if existing is not None and existing.get("device_id") == device_id:
        return
    answer = register(gateway, token, device_id)
    settings = {k: answer[k] for k in ("device_id", "mqtt", "bag_range")}
    tmp = config.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings))
    tmp.replace(config)


class SimHandheld:
    """A handheld process on the flash in state_dir. start() again after kill() is a reboot
    on the same flash; its log is <state_dir>.log beside it.

    code_on_flash: the code runs from <state_dir>-code (the ESP32's root, with main.py), where
    the first start installs today's bundle and release_key's public file (devkit/release.py)
    and a firmware update then installs its own (docs/ota.md)."""

    def __init__(
        self,
        state_dir: Path,
        heap: str | None = None,
        env: dict | None = None,
        code_on_flash: bool = False,
        release_key: Path | None = None,
    ):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.heap = heap or DEFAULT_HEAP
        self.env = env or {}
        self.log = self.state_dir.parent / (self.state_dir.name + ".log")
        self.code_root = self.state_dir.with_name(self.state_dir.name + "-code")
        self.code_on_flash = code_on_flash
        self.release_key = release_key
        self.launches = 0
        self.proc: subprocess.Popen | None = None
        self.control: Handheld | None = None
        self.port = 0

    @classmethod
    def with_config(
        cls, state_dir: Path, config: dict, heap: str | None = None, env: dict | None = None
    ) -> "SimHandheld":
        """A handheld without a gateway: config.json written from `config` (device_id, mqtt,
        bag_range and any config-message keys); the MQTT client keeps retrying its broker."""
        hh = cls(state_dir, heap, env)
        (hh.state_dir / "config.json").write_text(json.dumps(config))
        return hh

    @classmethod
    def provisioned(
        cls, gateway: str, token: str, device_id: str, state_dir: Path, heap: str | None = None
    ) -> "SimHandheld":
        """A handheld registered with the gateway at URL `gateway` (provision_flash)."""
        hh = cls(state_dir, heap)
        provision_flash(hh.state_dir, gateway, token, device_id)
        return hh

    def launch(self) -> None:
        """Start the process; connect() then waits for its control channel."""
        self.port = free_port()
        code_root = None
        if self.code_on_flash:
            code_root = self.code_root
            if not (code_root / "main.py").exists():
                public = release.public_path(self.release_key) if self.release_key else None
                release.install(code_root, bundle.build(BUILD), public)
        argv, env = firmware_command(self.state_dir, self.port, self.heap, self.env, code_root)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.launches += 1

    def connect(self, timeout: float = 30.0) -> Handheld:
        """The control channel, once the firmware has booted and recovered its journal."""
        self.control = Handheld(self.port, timeout=timeout)
        self.control.state()
        return self.control

    def start(self) -> Handheld:
        self.launch()
        return self.connect()

    def start_through_resets(self, timeout: float = 60.0) -> Handheld:
        """start(), and start again whenever the process ends before its control channel
        answers: the chip resetting itself (a crash at boot, or an update's switch), with
        its power on. launches counts the boots."""
        deadline = time.monotonic() + timeout
        self.launch()
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.launch()
                continue
            try:
                return self.connect(timeout=1)
            except OSError:
                continue
        raise TimeoutError(f"the handheld did not come up in {timeout} s: {self.log}")

    def wait_reset(self, timeout: float = 60.0) -> int:
        """Wait for the process to end by itself (a reset); its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self.control:
            self.control.close()
            self.control = None
        return code

    def kill(self) -> None:
        """A power cut: SIGKILL, nothing flushed that was not flushed already."""
        if self.control:
            self.control.close()
            self.control = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Switched off: SIGTERM, SIGKILL if it does not end within 10 s."""
        if self.control:
            self.control.close()
            self.control = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def journal(self) -> list[dict]:
        return read_journal(self.state_dir / "journal")


JOURNAL_MAGIC = 0x4A42  # docs/journal.md, "Frame"
JOURNAL_HEADER = struct.Struct("<HHII")


def read_journal(directory: Path) -> list[dict]:
    """The records of a handheld's journal (docs/journal.md), decoded in CPython.

    Valid frames only, segment by segment, stopping at the first bad frame of a segment as
    the firmware's recovery does; each record's "s" is its seq.
    """
    records = []
    for seg in sorted(Path(directory).glob("*.jnl")):
        data = seg.read_bytes()
        pos = 0
        while pos + JOURNAL_HEADER.size <= len(data):
            magic, n, seq, crc = JOURNAL_HEADER.unpack_from(data, pos)
            end = pos + JOURNAL_HEADER.size + n
            if magic != JOURNAL_MAGIC or end > len(data):
                break
            payload = data[pos + JOURNAL_HEADER.size : end]
            if zlib.crc32(payload, zlib.crc32(data[pos : pos + 8])) != crc:
                break
            rec = json.loads(payload)
            if rec.get("s") != seq:
                break
            records.append(rec)
            pos = end
    return records
