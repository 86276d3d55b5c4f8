# Boot: everything lives in app.main, run from the ROMFS partition mounted at /rom. A firmware
# update is a release file beside this one (docs/ota.md): on trial, or once confirmed, this
# file writes its image to the partition before anything is imported. An update never
# replaces this file, so it stays the way back: one on trial that has booted 3 times without
# the gateway's confirmation is dropped here, and the image it replaced is written back. Only
# names MicroPython has built in: every other one is interned for good (docs/firmware.md,
# "Few interned names").
import os

import vfs

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
        name = "ota/flashed"  # what tools/flash wrote (app/boot.py keeps it before an update)
try:
    with open(path + "ota/rom.slot") as file:
        data = file.read()
except OSError:
    data = "ota/flashed"  # no update has rewritten the partition
try:
    file = open(path + name, "rb") if data != name else None
except OSError:
    file = None  # no such release file: what the partition holds boots
if file:
    # ota/rom.slot names nothing while the partition is rewritten: a power cut in the middle
    # leaves it so, and the next boot writes the image again.
    open(path + "ota/rom.slot", "w").close()
    try:
        vfs.umount("/rom")
    except OSError:
        pass  # not mounted: a cut rewrite left no image
    file.readline()  # the release file's magic and version lines (protocol/ota.py)
    file.readline()
    # vfs.rom_ioctl (MicroPython 1.25+, extmod/vfs_rom_ioctl.c; the stubs lack it) on segment 0:
    # 3 erases the bytes to write, 4 writes at an offset, 5 completes, 2 is the segment.
    vfs.rom_ioctl(3, 0, os.stat(path + name)[6] - file.tell())  # pyright: ignore
    data = bytearray(4096)  # one flash sector
    pos = 0
    while True:
        n = file.readinto(data)
        if not n:
            break
        vfs.rom_ioctl(4, 0, pos, memoryview(data)[:n])  # pyright: ignore
        pos += n
    vfs.rom_ioctl(5, 0)  # pyright: ignore
    file.close()
    with open(path + "ota/rom.slot", "w") as file:
        file.write(name)
    vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), "/rom")  # pyright: ignore
    del pos, n
del path, name, data, file

from app import main  # noqa: E402 - from the partition written above

main.run()
