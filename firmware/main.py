# Boot: everything lives in app.main. A firmware update runs from its folder beside this
# file (docs/ota.md): on trial, or once confirmed. An update never replaces this file, so it
# stays the way back: one on trial that has booted 3 times without the gateway's
# confirmation is dropped here, and the code it replaced runs again. Only names MicroPython
# has built in: every other one is interned for good (docs/firmware.md, "Few interned names").
import os
import sys

path = __file__[:-7]  # the code's root, this file's folder ("" on the ESP32, cwd "/")
name = None
data = 0
file = None
try:
    with open(path + "ota/trial.slot") as file:
        name = file.read()
    try:
        data = os.stat(path + "ota/trial.boots")[6]  # one byte a boot
    except OSError:
        pass
    if data < 3:
        with open(path + "ota/trial.boots", "wb") as file:
            file.write(bytes(data + 1))
    else:
        os.rename(path + "ota/trial.slot", path + "ota/failed.slot")
        name = None
except OSError:
    pass
if name is None:
    try:
        with open(path + "ota/active.slot") as file:
            name = file.read()
    except OSError:
        pass
if name:
    sys.path.insert(0, path + name)
del path, name, data, file

from app import main  # noqa: E402 - from the folder chosen above

main.run()
