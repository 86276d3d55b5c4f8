"""The machinery tests/, bench/ and tools/ share: processes on free ports (gateway, Mosquitto,
scratch databases), the simulated handheld and its fleet, the firmware bundle and the
flash/provision tools (docs/tools.md)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout (installed editable)
