# Freezes the handheld's firmware into a MicroPython image for the ESP32, so its bytecode
# runs from flash instead of being loaded into the ~110 KB heap (docs/hardware.md,
# "Frozen image"). Build: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<this file> in
# micropython/ports/esp32. Read by MicroPython's tools/manifestfile.py, not imported.
# ruff: noqa: F821
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)
package("app")
package("drivers")
package("net")
# The contract shared with the gateway lives beside firmware/ (protocol/, docs/architecture.md).
package("protocol", base_path="..")
module("lazy.py")
# The simulated board stays out of the image, as it stays out of tools/flash's bundle.
package("hal", files=("__init__.py", "esp32.py"))
# main.py is not frozen: the ESP32 runs /main.py from the filesystem at boot.
