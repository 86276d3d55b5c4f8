"""tools/flash: the ESP32 bundle compiles every module, fits its budget, and lands on the board
verified by hash (the board here is a folder driven by a fake mpremote, docs/tools.md)."""

import hashlib
import json
import sys
from pathlib import Path

import pytest

from devkit import ROOT, bundle, flash

FIRMWARE = ROOT / "firmware"
PORT = "/dev/ttyFAKE0"


def host_config(tmp_path: Path, device_id: str = "hh-0042", **extra) -> Path:
    cfg = {
        "device_id": device_id,
        "mqtt": {"host": "gw.example", "port": 8883, "user": device_id, "password": "s3cret"},
        "bag_range": [2001, 3000],
        "wifi": [{"ssid": "warehouse", "password": "wpa-pass"}],
        **extra,
    }
    path = tmp_path / f"{device_id}.json"
    path.write_text(json.dumps(cfg))
    return path


def dry_run(tmp_path, capsys, config: Path):
    stage = tmp_path / "stage"
    assert flash.main(["--dry-run", "--config", str(config), "--stage", str(stage)]) == 0
    return stage, capsys.readouterr().out


def test_dry_run_compiles_every_firmware_module_for_the_esp32(tmp_path, capsys):
    stage, out = dry_run(tmp_path, capsys, host_config(tmp_path))
    modules = {
        bundle.bundle_path(p).with_suffix(".mpy")
        for p in bundle.sources("esp32")
        # An empty __init__.py is not shipped: MicroPython imports the folder as a package.
        if bundle.bundle_path(p) != Path("main.py") and p.stat().st_size
    }
    assert Path("hal/esp32.mpy") in modules and Path("hal/sim.mpy") not in modules
    for rel in modules:
        data = (stage / rel).read_bytes()
        assert bundle.mpy_header_error(data) is None, (rel, data[:4])
        assert f":/{rel.as_posix()}" in out
    assert not list(stage.rglob("*.py"))[1:], "only main.py stays source"
    assert (stage / "main.py").read_bytes() == (FIRMWARE / "main.py").read_bytes()
    assert "dry run, nothing copied" in out


def test_mpy_header_check_refuses_other_targets(tmp_path):
    assert bundle.mpy_header_error(b"M\x05\x00\x1f") == "mpy version 5, want 6"
    assert "arch 1" in bundle.mpy_header_error(b"M\x06\x07\x1f")  # x86 native code
    assert "63 bits" in bundle.mpy_header_error(b"M\x06\x00\x3f")
    assert bundle.mpy_header_error(b"M\x06\x2b\x1f") is None  # xtensawin native code


def test_bundle_fits_the_documented_flash_and_ram_budget(tmp_path, capsys):
    stage, out = dry_run(tmp_path, capsys, host_config(tmp_path))
    size = bundle.footprint(stage)
    assert size["flash_bytes"] <= bundle.FLASH_BUDGET
    assert size["resident_mpy_bytes"] <= bundle.RAM_BUDGET < size["mpy_bytes"]
    # Every module the budget counts as loaded on demand is one of the firmware's.
    names = {bundle.bundle_path(src).with_suffix("").as_posix() for src in bundle.sources()}
    assert set(bundle.MODES + bundle.CALLS + bundle.NEVER_LOADED) <= names
    doc = (ROOT / "docs" / "tools.md").read_text()
    assert f"{bundle.FLASH_BUDGET // 1024} KiB" in doc and f"{bundle.RAM_BUDGET // 1024} KiB" in doc


def test_pin_map_and_device_config_are_staged_in_the_shape_the_firmware_reads(tmp_path, capsys):
    ca = tmp_path / "gateway-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    config = host_config(tmp_path)
    raw = json.loads(config.read_text())
    raw["mqtt"]["ca"] = str(ca)
    config.write_text(json.dumps(raw))
    stage, _ = dry_run(tmp_path, capsys, config)
    assert (stage / "pinmap.json").read_bytes() == (ROOT / "hw" / "pinmap.json").read_bytes()
    cfg = json.loads((stage / "data" / "config.json").read_text())
    assert cfg == {
        "device_id": "hh-0042",
        "mqtt": {
            "host": "gw.example",
            "port": 8883,
            "user": "hh-0042",
            "password": "s3cret",
            "tls": True,
            "ca": "/data/ca.pem",
        },
        "bag_range": [2001, 3000],
        "wifi": [{"ssid": "warehouse", "password": "wpa-pass"}],
    }
    assert (stage / "data" / "ca.pem").read_bytes() == ca.read_bytes()


def test_a_config_without_credentials_is_refused(tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"device_id": "x", "mqtt": {"host": "h"}, "bag_range": [1, 2]}))
    assert flash.main(["--dry-run", "--config", str(config)]) == 1
    assert "mqtt.port is missing" in capsys.readouterr().err


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A board with stock MicroPython's boot.py, a calibration, and stale code of an old flash."""
    root = tmp_path / "board" / "fs"
    (root / "app").mkdir(parents=True)
    (root / "boot.py").write_text("# stock\n")
    (root / "app" / "workflow.py").write_text("# an old source deploy\n")
    (root / "app" / "gone.mpy").write_bytes(b"M\x06\x00\x1f")
    (root / "data" / "journal").mkdir(parents=True)
    (root / "data" / "scale.json").write_text('{"k": 28}')
    wrapper = tmp_path / "board" / "mpremote"
    fake = Path(__file__).with_name("fake_mpremote.py")
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("BAGSCAN_MPREMOTE", str(wrapper))
    monkeypatch.setenv("FAKE_BOARD_ROOT", str(root))
    monkeypatch.setenv("FAKE_BOARD_PORT", PORT)
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_flash_copies_verifies_and_removes_stale_code(tmp_path, board, capsys):
    stage = tmp_path / "stage"
    args = ["--port", PORT, "--config", str(host_config(tmp_path)), "--stage", str(stage)]
    assert flash.main(args) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    staged = [p for p in stage.rglob("*") if p.is_file()]
    assert f"verified {len(staged)} files by sha256 on the device" in out
    for src in staged:
        assert sha(board / src.relative_to(stage)) == sha(src)
    assert not (board / "app" / "workflow.py").exists()  # would shadow app/workflow.mpy
    assert not (board / "app" / "gone.mpy").exists()
    assert (board / "boot.py").exists() and (board / "data" / "scale.json").exists()
    assert (board.parent / "reset").exists()


def test_a_board_of_another_device_is_only_flashed_with_wipe(tmp_path, board, capsys):
    (board / "data" / "config.json").write_text('{"device_id": "hh-0007"}')
    (board / "data" / "next_serial").write_text("77")
    args = ["--port", PORT, "--config", str(host_config(tmp_path)), "--stage", str(tmp_path / "s")]
    assert flash.main(args) == 1
    assert "holds device 'hh-0007'" in capsys.readouterr().err
    assert flash.main([*args, "--wipe"]) == 0
    assert not (board / "data" / "next_serial").exists()
    assert not (board / "data" / "journal").exists()
    assert (board / "data" / "scale.json").read_text() == '{"k": 28}'
    assert json.loads((board / "data" / "config.json").read_text())["device_id"] == "hh-0042"


def test_a_wrong_port_fails_with_mpremotes_message(tmp_path, board, capsys):
    args = ["--port", "/dev/ttyUSB9", "--config", str(host_config(tmp_path))]
    assert flash.main([*args, "--stage", str(tmp_path / "s")]) == 1
    assert "failed to access /dev/ttyUSB9" in capsys.readouterr().err


def frozen_by_manifest() -> set[str]:
    """The modules firmware/manifest.py freezes, read with stand-ins for MicroPython's
    manifest functions (tools/manifestfile.py: include, package, module)."""
    frozen: set[str] = set()

    def package(name, files=None, base_path=".", opt=None):
        top = FIRMWARE / base_path / name
        found = files or [p.relative_to(top).as_posix() for p in top.rglob("*.py")]
        frozen.update(f"{name}/{f}" for f in found)

    def module(name, base_path=".", opt=None):
        frozen.add(name)

    code = (FIRMWARE / "manifest.py").read_text()
    exec(code, {"include": lambda path: None, "package": package, "module": module})
    return frozen


def test_the_manifest_freezes_exactly_the_esp32_bundle_but_main():
    bundled = {bundle.bundle_path(p).as_posix() for p in bundle.sources("esp32")}
    assert frozen_by_manifest() == bundled - {"main.py"}
    assert "hal/sim.py" not in bundled and "manifest.py" not in bundled
    assert "protocol/wire.py" in bundled


def test_a_frozen_image_gets_main_pin_map_and_config_and_no_code_that_would_shadow_it(
    tmp_path, board, capsys
):
    stage = tmp_path / "stage"
    args = ["--port", PORT, "--config", str(host_config(tmp_path)), "--stage", str(stage)]
    assert flash.main([*args, "--frozen"]) == 0, capsys.readouterr()
    staged = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    assert staged == ["data/config.json", "main.py", "pinmap.json"]
    assert (board / "main.py").read_text() == (FIRMWARE / "main.py").read_text()
    assert not list((board / "app").glob("*"))  # the filesystem would win over .frozen
    assert "RAM" not in capsys.readouterr().err


def test_a_romfs_board_gets_the_code_as_one_image_that_micropython_imports_from(
    tmp_path, board, capsys, run_mpy
):
    stage = tmp_path / "stage"
    args = ["--port", PORT, "--config", str(host_config(tmp_path)), "--stage", str(stage)]
    assert flash.main([*args, "--romfs"]) == 0, capsys.readouterr()
    staged = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    assert staged == ["data/config.json", "main.py", "pinmap.json"]
    assert not list((board / "app").glob("*"))  # the filesystem would shadow /rom
    image = board.parent / "romfs.img"
    # The image mounts as MicroPython mounts a ROMFS partition, and holds the ESP32 bundle.
    listing = run_mpy(
        "import vfs, os\n"
        f"vfs.mount(vfs.VfsRom(open({str(image)!r}, 'rb').read()), '/rom')\n"
        "print(sorted(os.listdir('/rom/app')), len(open('/rom/hal/esp32.mpy', 'rb').read()))\n",
        heap="1M",
    ).stdout
    assert "'bagging.mpy'" in listing and "'workflow.mpy'" in listing
    assert int(listing.split()[-1]) == (flash.BUILD / "hal" / "esp32.mpy").stat().st_size
